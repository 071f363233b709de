"""`edgegen compare --per-layer` as a user runs it: the report, its formats, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from clitools import assert_one_line_error, child_env, run_edgegen
from tinymodels import damaged_conv_copy, exported, identity_onnx, tiny_checkpoint

SIZE = ("--sizes", "40x56")


def _out() -> Path:
    return exported(("fp32", "fp16", "int8"))


def test_table_names_the_damaged_conv_first(tmp_path):
    ref = _out() / "model.fp32.onnx"
    bad = tmp_path / "model.bad.onnx"
    damaged = damaged_conv_copy(ref, bad, conv_index=1, seed=11)
    proc = run_edgegen("compare", "--per-layer", "--reference", str(ref), str(bad), *SIZE)
    assert proc.returncode == 0, proc.stderr
    marked = [line for line in proc.stdout.splitlines() if "<- first jump" in line]
    assert len(marked) == 1 and damaged in marked[0].split(), proc.stdout
    assert f"first jump: {damaged} (Conv node" in proc.stdout
    as_json = run_edgegen("compare", "--per-layer", "--reference", str(ref), str(bad),
                          "--format", "json")  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["first_jump"] == damaged
    assert data["settings"]["sizes"] == ["256x256"]  # the default crop of --per-layer


def test_json_to_a_file_and_markdown(tmp_path):
    out = _out()
    ref = str(out / "model.fp32.onnx")
    target = tmp_path / "layers.json"
    target.write_text("old")
    proc = run_edgegen("compare", "--per-layer", "--reference", ref, str(out / "model.int8.onnx"),
                       *SIZE, "--format", "json", "--output", str(target))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "report written to" in proc.stdout
    data = json.loads(target.read_text())
    assert set(data) == {"settings", "reference", "variant", "tensors", "unmatched",
                         "first_jump", "jumps"}  # fmt: skip
    assert data["variant"]["precision"] == "int8" and data["settings"]["sizes"] == ["40x56"]
    assert data["settings"]["photos"] == ["chelsea.png", "coffee.png", "rocket.jpg"]
    tensors = data["tensors"]
    assert tensors[0]["name"] == "input" and tensors[-1]["name"] == "output"
    assert [t["index"] for t in tensors] == sorted(t["index"] for t in tensors)
    assert all(isinstance(t["sqnr_db"], float) for t in tensors)
    assert data["first_jump"] == data["jumps"][0]
    assert not list(tmp_path.glob(".*.tmp"))
    md = run_edgegen("compare", "--per-layer", "--reference", ref, str(out / "model.fp16.onnx"),
                     *SIZE, "--format", "markdown", "--jump-db", "5")  # fmt: skip
    assert md.returncode == 0, md.stderr
    assert md.stdout.startswith("| # | tensor | op | SQNR dB |")
    assert "(fp16)" in md.stdout and "jump: >= 5 dB" in md.stdout


def test_usage_and_input_errors(tmp_path):
    out = _out()
    ref = str(out / "model.fp32.onnx")
    int8 = str(out / "model.int8.onnx")
    assert_one_line_error(
        run_edgegen("compare", "--per-layer", "--reference", str(tmp_path / "x.onnx"), int8),
        "no such file",
    )
    assert_one_line_error(
        run_edgegen("compare", "--per-layer", "--reference", ref, str(tmp_path / "v.onnx")),
        "no such file",
    )
    fp16 = str(out / "model.fp16.onnx")
    assert_one_line_error(
        run_edgegen("compare", "--per-layer", "--reference", ref, int8, fp16),
        "one VARIANT",
        "2 given",
    )
    assert_one_line_error(
        run_edgegen("compare", "--per-layer", "--reference", ref, str(out)),
        "holds 3", "model.int8.onnx",
    )  # fmt: skip
    run = tiny_checkpoint(tmp_path / "run").parent
    assert_one_line_error(
        run_edgegen("compare", "--per-layer", "--reference", str(run), int8),
        "needs an fp32 ONNX file",
    )
    assert_one_line_error(
        run_edgegen("compare", "--per-layer", "--reference", ref, int8, "--report", str(tmp_path)),
        "--report does not apply to --per-layer",
    )
    assert_one_line_error(
        run_edgegen("compare", "--per-layer", "--reference", ref, int8, "--max-lsb", "2"),
        "--max-lsb does not apply",
    )
    assert_one_line_error(
        run_edgegen("compare", "--reference", ref, int8, "--jump-db", "3"),
        "--jump-db applies only with --per-layer",
    )
    from edgegen.runtime.generator import Generator

    other = identity_onnx(tmp_path / "other.onnx", Generator(Path(ref)).spec, block=2)
    assert_one_line_error(
        run_edgegen("compare", "--per-layer", "--reference", ref, str(other), *SIZE),
        "shares no intermediate tensor name",
    )
    target = tmp_path / "kept.json"
    target.write_text("kept")
    assert_one_line_error(
        run_edgegen("compare", "--per-layer", "--reference", ref, str(other), *SIZE,
                    "--output", str(target)),
        "shares no intermediate",
    )  # fmt: skip
    assert target.read_text() == "kept"


def test_without_onnx_it_names_the_package(tmp_path):
    """The runtime installs without onnx; --per-layer needs it and says so in one line."""
    out = _out()
    blocker = (
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'onnx':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, _Block())\n"
        "from edgegen.cli.main import main\n"
    )
    args = ["compare", "--per-layer", "--reference", str(out / "model.fp32.onnx"),
            str(out / "model.int8.onnx"), *SIZE]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", blocker + f"main({args!r})"],
        capture_output=True, text=True, timeout=300, env=child_env(),
    )  # fmt: skip
    assert_one_line_error(proc, "needs the onnx package", "pip install onnx")


def test_help_documents_per_layer_and_exit_codes():
    proc = run_edgegen("compare", "--help")
    assert proc.returncode == 0
    assert "--per-layer" in proc.stdout and "--jump-db" in proc.stdout
    assert "report was made" in proc.stdout and "share no tensor name" in proc.stdout
