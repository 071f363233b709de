"""`edgegen run` and `edgegen verify` end to end, in subprocesses, as a user runs them."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from clitools import assert_one_line_error, run_edgegen
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))

from test_images import huge_png, truncated_png
from tinymodels import exported, photo, tamper

from edgegen.runtime.images import read_image


@pytest.fixture(scope="module")
def models() -> Path:
    return exported(("fp32", "fp16", "int8"))


def test_verify_exit_codes(models, tmp_path):
    for precision in ("fp32", "fp16", "int8"):
        proc = run_edgegen("verify", str(models / f"model.{precision}.onnx"), "--device", "cpu")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "PASS" in proc.stdout and "max LSB" in proc.stdout
    bad = tmp_path / "model.fp32.onnx"
    tamper(models / "model.fp32.onnx", bad)
    assert_one_line_error(run_edgegen("verify", str(bad)), "unverifiable", "--no-manifest")
    proc = run_edgegen("verify", str(bad), "--no-manifest")  # no manifest to catch the weights
    assert proc.returncode == 1, proc.stderr
    assert "FAIL" in proc.stdout and "Traceback" not in proc.stderr
    assert "not vouched for" in proc.stdout
    lone = tmp_path / "lone" / "model.fp32.onnx"
    lone.parent.mkdir()
    shutil.copy(models / "model.fp32.onnx", lone)
    assert_one_line_error(run_edgegen("verify", str(lone), "--no-manifest"), "unverifiable")


def test_run_end_to_end_with_a_truncated_input(models, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    img = photo(0)[:40, :56]
    Image.fromarray(img).save(src / "a.png")
    Image.fromarray(img[:, :, 0]).save(src / "sub" / "b.jpg")
    truncated_png(src / "cut.png")
    out = tmp_path / "out"
    proc = run_edgegen("run", str(models / "model.fp32.onnx"), str(src), "-o", str(out))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "cut.png" in proc.stderr and "1 of 3" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    a = read_image(out / "a.png")
    assert a.shape == img.shape and a.dtype == np.uint8
    assert read_image(out / "b.png").ndim == 2  # gray in, gray out

    # a glob, the good file only: exit 0, outputs replaced atomically
    proc = run_edgegen(
        "run", str(models / "model.fp32.onnx"), str(src / "*.png"), "-o", str(out), "--tile", "16",
        "--overlap", "4", "--threads", "1",
    )  # fmt: skip
    assert proc.returncode == 1  # cut.png still matches the glob
    proc = run_edgegen("run", str(models / "model.fp32.onnx"), str(src / "a.png"), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert not list(out.glob(".*.tmp"))


def test_run_bad_input_is_one_line(models, tmp_path):
    model = str(models / "model.fp32.onnx")
    img = tmp_path / "x.png"
    Image.fromarray(photo(0)[:16, :16]).save(img)
    not_a_dir = tmp_path / "file.txt"
    not_a_dir.write_text("x")
    assert_one_line_error(run_edgegen("run", model, str(img), "-o", str(not_a_dir)), "is a file")
    # the output would overwrite the input
    assert_one_line_error(run_edgegen("run", model, str(img), "-o", str(tmp_path)), "overwrite")
    notes = tmp_path / "notes.onnx"
    notes.write_text("no model")
    assert_one_line_error(
        run_edgegen("run", str(notes), str(img), "-o", str(tmp_path / "o")), "notes.onnx"
    )
    assert_one_line_error(
        run_edgegen("run", model, str(tmp_path / "nothing*.png"), "-o", str(tmp_path / "o")),
        "no files match",
    )
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert_one_line_error(
            run_edgegen("run", model, str(img), "-o", str(tmp_path / "o"), "--device", "cuda"),
            "CUDAExecutionProvider",
            "edgegen[gpu]",
        )
    assert not (tmp_path / "o").exists()  # nothing written on a refused run


def test_run_skips_an_image_over_the_pixel_limit(models, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    huge_png(src / "huge.png")
    Image.fromarray(photo(2)[:20, :20]).save(src / "ok.png")
    out = tmp_path / "out"
    proc = run_edgegen("run", str(models / "model.fp32.onnx"), str(src), "-o", str(out))
    assert proc.returncode == 1
    assert "400000000 pixels, over the limit of" in proc.stderr
    assert [p.name for p in out.iterdir()] == ["ok.png"]


def test_help_lists_run_and_verify():
    proc = run_edgegen("--help")
    assert "run" in proc.stdout and "verify" in proc.stdout
    proc = run_edgegen("run", "--help")
    assert proc.returncode == 0 and "Exit codes" in proc.stdout


def test_a_mistyped_command_names_the_nearest_one():
    proc = run_edgegen("trian")
    assert_one_line_error(proc)
    assert proc.stderr == "edgegen: error: No such command 'trian'. Did you mean 'train'?\n"
    assert proc.stdout == ""
    # Its own arguments do not matter: the command name is wrong, nothing else is parsed.
    assert_one_line_error(run_edgegen("verfy", "--device", "cpu"), "Did you mean 'verify'?")
    nothing_close = run_edgegen("xyzzy")
    assert_one_line_error(nothing_close, "No such command 'xyzzy'.")
    assert "Did you mean" not in nothing_close.stderr
    # A mistyped option of the group still gets click's own suggestion, in the same format.
    assert_one_line_error(run_edgegen("--verz"), "No such option '--verz'. Did you mean")


def test_no_such_command_words_several_matches_as_click_does():
    from edgegen.cli.main import no_such_command

    commands = ["bench", "compare", "export", "models", "run"]
    assert no_such_command("exprot", commands) == "No such command 'exprot'. Did you mean 'export'?"
    assert no_such_command("model", ["models", "modes"]) == (
        "No such command 'model'. (Did you mean one of: 'models', 'modes'?)"
    )
    assert no_such_command("zzz", commands) == "No such command 'zzz'."


def test_batched_run_writes_what_one_by_one_does(models, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(3)
    for name, (h, w) in {"a": (40, 56), "b": (40, 56), "c": (40, 56), "d": (33, 47)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(src / f"{name}.png")
    model = str(models / "model.fp32.onnx")
    one = run_edgegen("run", model, str(src), "-o", str(tmp_path / "one"), "--no-progress")
    many = run_edgegen(
        "run", model, str(src), "-o", str(tmp_path / "many"), "--batch", "3", "--no-progress"
    )
    assert one.returncode == 0 and many.returncode == 0, one.stderr + many.stderr
    for name in "abcd":
        a = read_image(tmp_path / "one" / f"{name}.png").astype(int)
        b = read_image(tmp_path / "many" / f"{name}.png").astype(int)
        assert np.abs(a - b).max() <= 1  # the same model; batching may change float rounding
    assert_one_line_error(run_edgegen("run", model, str(src), "-o", "x", "--batch", "0"), "--batch")
