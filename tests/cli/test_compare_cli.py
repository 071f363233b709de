"""`edgegen compare` as a user runs it: exit codes, formats, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from clitools import assert_one_line_error, run_edgegen
from tinymodels import exported

from edgegen.runtime.providers import CUDA, available_providers


def _out() -> Path:
    return exported(("fp32", "fp16", "int8"))


def test_passes_then_fails_with_a_tight_threshold(tmp_path):
    out = _out()
    ref = str(out / "model.fp32.onnx")
    ok = run_edgegen("compare", "--reference", ref, str(out), "--sizes", "37x53",
                     "--max-lsb", "64", "--min-psnr", "30", "--max-psnr-drop", "1")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "model.int8.onnx" in ok.stdout and "PASS" in ok.stdout
    bad = run_edgegen("compare", "--reference", ref, str(out), "--sizes", "37x53",
                      "--min-psnr", "60")  # fmt: skip
    assert bad.returncode == 1, bad.stderr
    assert "model.int8.onnx on cpu at 37x53" in bad.stderr and "--min-psnr" in bad.stderr
    assert "model.fp32.onnx on cpu" not in bad.stderr


def test_json_and_markdown_output_files(tmp_path):
    out = _out()
    ref = str(out / "model.fp32.onnx")
    target = tmp_path / "r.json"
    proc = run_edgegen("compare", "--reference", ref, str(out / "model.fp16.onnx"),
                       "--sizes", "37x53", "--format", "json", "--output", str(target))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(target.read_text())
    assert data["passed"] and data["variants"][0]["precision"] == "fp16"
    md = run_edgegen("compare", "--reference", ref, str(out / "model.fp16.onnx"),
                     "--sizes", "37x53", "--format", "markdown")  # fmt: skip
    assert md.returncode == 0 and md.stdout.startswith("| variant |")


def test_usage_and_input_errors(tmp_path):
    out = _out()
    ref = str(out / "model.fp32.onnx")
    assert_one_line_error(
        run_edgegen("compare", "--reference", str(tmp_path / "x.onnx"), str(out)), "no such file"
    )
    assert_one_line_error(
        run_edgegen("compare", "--reference", ref, str(out / "model.fp32.manifest.json")),
        "not an .onnx file",
    )
    assert_one_line_error(
        run_edgegen("compare", "--reference", ref, str(out), "--providers", "tpu"),
        "unknown provider",
    )
    if CUDA not in available_providers():
        assert_one_line_error(
            run_edgegen("compare", "--reference", ref, str(out), "--providers", "cpu,cuda"),
            "CUDAExecutionProvider is not available",
        )
    assert run_edgegen("compare", "--reference", ref).returncode == 2


def test_help_documents_exit_codes():
    proc = run_edgegen("compare", "--help")
    assert proc.returncode == 0
    assert "Exit codes" in proc.stdout and "threshold is broken" in proc.stdout
