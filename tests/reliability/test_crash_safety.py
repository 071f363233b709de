"""Crash safety: SIGKILL during export and during `edgegen run`, and a full disk during checkpoint,
export and run writes. (SIGKILL during training and resume: tests/train/test_crash_resume.py.)

The full disk is a child process with RLIMIT_FSIZE set and SIGXFSZ ignored, so a write past the
limit fails with EFBIG ("File too large") as a full filesystem fails with ENOSPC: no root and no
tmpfs needed.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
from badinputs import photo_crop
from clitools import TINY, assert_one_line_error, child_env, edgegen_cmd, run_edgegen
from PIL import Image
from skimage import data as skdata
from tinymodels import exported, tiny_checkpoint

from edgegen.runtime.images import read_image
from edgegen.train.checkpoint import load_checkpoint


def run_with_file_limit(limit: int, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``edgegen ARGS`` in a child that cannot write a file larger than ``limit`` bytes."""

    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write() instead of dying
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        edgegen_cmd(*args), capture_output=True, text=True, cwd=cwd, timeout=300,
        env=child_env(), preexec_fn=limit_files,
    )  # fmt: skip


def files_in(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.tmp"))


def photo_folder(folder: Path, n: int) -> Path:
    """``n`` different 48x64 crops of a real photo (scikit-image's astronaut)."""
    folder.mkdir(parents=True)
    photo = skdata.astronaut()
    rng = np.random.default_rng(0)
    for i in range(n):
        y, x = rng.integers(0, photo.shape[0] - 48), rng.integers(0, photo.shape[1] - 64)
        Image.fromarray(photo[y : y + 48, x : x + 64]).save(folder / f"img{i:03d}.png")
    return folder


# -- SIGKILL -----------------------------------------------------------------------------------


def test_sigkill_during_export_leaves_no_artifact_and_a_rerun_completes(tmp_path: Path) -> None:
    ckpt = tiny_checkpoint(tmp_path / "run")
    out = tmp_path / "out"
    args = (
        "export", str(ckpt), "--out", str(out), "--precision", "fp32,int8", "--calib-count", "4",
        "--no-progress",
    )  # fmt: skip
    proc = subprocess.Popen(
        edgegen_cmd(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=child_env()
    )
    deadline = time.monotonic() + 240
    # int8 is staged after fp32 was written and verified: the middle of the transaction
    while not list(out.glob(".model.int8.onnx.*.tmp")):
        assert proc.poll() is None, "export ended before it could be killed"
        assert time.monotonic() < deadline, "export never staged its int8 file"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert temps(out), "the kill came after the transaction"
    assert not [p.name for p in out.iterdir() if not p.name.startswith(".")]  # nothing real

    rerun = run_edgegen(*args, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        f"model.{p}.{kind}" for p in ("fp32", "int8") for kind in ("onnx", "manifest.json",
                                                                   "golden.npz")
    )  # fmt: skip
    assert run_edgegen("verify", str(out / "model.int8.onnx"), "--device", "cpu").returncode == 0


def test_sigkill_during_run_keeps_finished_outputs_and_a_rerun_does_the_rest(
    tmp_path: Path,
) -> None:
    model = str(exported(("fp32",)) / "model.fp32.onnx")
    src = photo_folder(tmp_path / "in", 80)
    ref = run_edgegen("run", model, str(src), "-o", str(tmp_path / "ref"), "--no-progress")
    assert ref.returncode == 0, ref.stderr
    expected = files_in(tmp_path / "ref")
    assert len(expected) == 80

    out = tmp_path / "out"
    proc = subprocess.Popen(
        edgegen_cmd("run", model, str(src), "-o", str(out), "--no-progress", "--threads", "1"),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=dict(child_env(), PYTHONUNBUFFERED="1"),  # one line as each output is renamed
    )  # fmt: skip
    assert proc.stdout is not None
    done = [proc.stdout.readline() for _ in range(15)]  # "src -> dst" once each is renamed
    assert all(" -> " in line for line in done)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    finished = files_in(out)
    assert 15 <= len(finished) < 80
    for name, data in finished.items():  # every output under its real name is whole
        assert data == expected[name], name
    stats = {name: (out / name).stat() for name in finished}

    rerun = run_edgegen("run", model, str(src), "-o", str(out), "--no-progress")
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(finished)} output(s) already exist" in rerun.stderr
    assert files_in(out) == expected
    for name, before in stats.items():  # skipped, not rewritten
        after = (out / name).stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), name


# -- a full disk ---------------------------------------------------------------------------------


def test_disk_full_during_a_checkpoint_write(tmp_path: Path) -> None:
    """best.safetensors (6.5 KB) fits under the limit, last.safetensors (20 KB, with the
    optimizer state) does not: one line, and the checkpoint written before it stays whole."""
    proc = run_with_file_limit(
        10_000, "train", *TINY, "--steps", "2", "--val-every", "1", "--out", "run", cwd=tmp_path
    )
    assert_one_line_error(proc, "cannot write checkpoint", "last.safetensors", "File too large")
    run = tmp_path / "run"
    assert not (run / "last.safetensors").exists() and not temps(run)
    best = load_checkpoint(run / "best.safetensors")
    assert best.step == 0 and best.weights


def test_disk_full_during_export_keeps_the_earlier_export(tmp_path: Path) -> None:
    ckpt = tiny_checkpoint(tmp_path / "run")
    out = tmp_path / "out"
    first = run_edgegen("export", str(ckpt), "--out", str(out), "--no-progress")
    assert first.returncode == 0, first.stderr
    before = files_in(out)
    proc = run_with_file_limit(
        30_000, "export", str(ckpt), "--out", str(out), "--no-progress", cwd=tmp_path
    )  # the 0.6 MB golden samples do not fit
    assert_one_line_error(proc, f"export to {out} failed", "File too large")
    assert files_in(out) == before and not temps(out)


def test_disk_full_during_run_keeps_earlier_outputs(tmp_path: Path) -> None:
    model = str(exported(("fp32",)) / "model.fp32.onnx")
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(photo_crop(8, 8)).save(src / "a_small.png")
    out = tmp_path / "out"
    assert run_edgegen("run", model, str(src), "-o", str(out)).returncode == 0
    before = files_in(out)
    Image.fromarray(skdata.astronaut()[:200, :200]).save(src / "b_large.png")
    proc = run_with_file_limit(20_000, "run", model, str(src), "-o", str(out), cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()  # the note that a_small.png was skipped, then the error
    assert len(lines) == 2 and "1 output(s) already exist" in lines[0], lines
    assert lines[1].startswith("edgegen: error: cannot write") and "b_large.png" in lines[1]
    assert "File too large" in lines[1]
    assert files_in(out) == before and not temps(out)
    assert read_image(out / "a_small.png").shape == (8, 8, 3)
