"""`edgegen pipeline` (what `make demo` runs) end to end on a tiny preset, in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clitools import assert_one_line_error, run_edgegen

TINY_PRESET = """
task = "denoise"
sigma = 25
arch = "tiny"
channels = 6
patch = 32
batch = 2
workers = 0
steps = 4
val_every = 2
"""
FAST = ("--calib-count", "4", "--repeats", "1", "--no-progress")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("pipeline")
    preset = root / "tiny.toml"
    preset.write_text(TINY_PRESET)
    out = root / "demo"
    proc = run_edgegen("pipeline", "--preset", str(preset), "--out", str(out), *FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc


def test_every_stage_runs_and_writes_its_files(demo):
    out, proc = demo
    for k, stage in enumerate(("train", "export", "verify", "compare", "report"), start=1):
        assert f"[{k}/5] {stage}: done in" in proc.stderr, proc.stderr
    steps = [json.loads(line)["step"] for line in (out / "train" / "metrics.jsonl").open()]
    assert steps == [0, 2, 4]
    for precision in ("fp32", "fp16", "int8", "auto"):
        for suffix in ("onnx", "manifest.json", "golden.npz"):
            assert (out / "export" / f"model.{precision}.{suffix}").is_file()
    page = (out / "report" / "index.html").read_text()
    assert all(f"model.{p}.onnx" in page for p in ("fp32", "fp16", "int8", "auto"))
    assert not list(out.rglob("*.tmp"))  # every file renamed into place


def test_prints_the_summary_table_and_the_report_path(demo):
    out, proc = demo
    lines = proc.stdout.splitlines()
    assert lines[-1] == f"report: {out / 'report' / 'index.html'}"
    header = "artifact MB GT PSNR dB vs torch dB max LSB p50 ms verified"
    assert lines[0].split() == header.split()
    compared = json.loads((out / "compare.json").read_text())
    assert compared["passed"] is True
    assert compared["reference"]["kind"] == "checkpoint"
    torch_psnr = compared["reference"]["rows"][0]["gt_psnr"]
    table = [line.split() for line in lines if line.strip()]
    rows = {cells[0]: cells for cells in table if cells[0].startswith("model.")}
    assert sorted(rows) == [f"model.{p}.onnx" for p in ("auto", "fp16", "fp32", "int8")]
    for name, cells in rows.items():
        size_mb = (out / "export" / name).stat().st_size / 1e6
        assert float(cells[1]) == pytest.approx(size_mb, abs=0.001)
        assert cells[-1] == "PASS"
    # fp32 ONNX computes what PyTorch computes: same PSNR against the clean photos.
    assert float(rows["model.fp32.onnx"][2]) == pytest.approx(torch_psnr, abs=0.01)
    assert float(rows["model.fp32.onnx"][4]) < 0.01  # max LSB against PyTorch
    assert (out / "summary.txt").read_text().strip() == "\n".join(lines[:-1]).strip()


def test_an_out_folder_that_holds_files_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    keep = out / "notes.txt"
    keep.write_text("mine")
    assert_one_line_error(
        run_edgegen("pipeline", "--preset", "denoise-small", "--out", str(out), *FAST),
        str(out),
        "not empty",
    )
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert keep.read_text() == "mine"


def test_bad_preset_and_precision_are_one_line_errors_before_any_file(tmp_path):
    out = tmp_path / "demo"
    assert_one_line_error(
        run_edgegen("pipeline", "--preset", "no-such-preset", "--out", str(out), *FAST),
        "unknown preset",
    )
    assert_one_line_error(
        run_edgegen("pipeline", "--precision", "fp32,int4", "--out", str(out), *FAST),
        "int4",
    )
    assert_one_line_error(
        run_edgegen("pipeline", "--target", "psnr-drop=0.1", "--out", str(out), *FAST),
        "psnr-drop=0.1",
    )
    assert not out.exists()
