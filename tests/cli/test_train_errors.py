"""Bad input to `edgegen train`: one clear line, exit code 2, no traceback, nothing written."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from clitools import TINY, assert_one_line_error, run_edgegen
from PIL import Image


def edgegen(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_edgegen(*args, cwd=cwd, timeout=300)


def photo_folder(root: Path, n: int = 3, size: int = 48) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        pixels = rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"img{i}.png")
    return root


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    return photo_folder(tmp_path / "photos")


def test_missing_data_path(tmp_path):
    proc = edgegen("train", "--data", "no/such/dir", "--out", "run", cwd=tmp_path)
    assert_one_line_error(proc, "no/such/dir", "does not exist")
    assert not (tmp_path / "run").exists()


def test_folder_without_images(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no pictures here")
    proc = edgegen("train", "--data", "empty", "--out", "run", cwd=tmp_path)
    assert_one_line_error(proc, "empty", "contains no images")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--arch", "huge"], ["unknown arch 'huge'", "tiny"]),
        (["--task", "deblur"], ["unknown task 'deblur'"]),
        (["--preset", "nope"], ["unknown preset 'nope'"]),
        (["--sigma", "-5"], ["--sigma must be >= 0"]),
        (["--task", "sr", "--scale", "5"], ["--scale must be 2, 3 or 4"]),
        (["--steps", "ten"], ["'--steps'", "ten"]),
        (["--bogus"], ["--bogus"]),
    ],
)
def test_bad_options(tmp_path, photos, args, needles):
    proc = edgegen("train", "--data", str(photos), "--out", "run", *args, cwd=tmp_path)
    assert_one_line_error(proc, *needles)
    assert not (tmp_path / "run").exists()


def test_patch_larger_than_every_image(tmp_path, photos):
    proc = edgegen("train", "--data", str(photos), "--patch", "128", "--out", "run", cwd=tmp_path)
    assert_one_line_error(proc, "--patch 128", "larger than every training image")
    assert not (tmp_path / "run").exists()


def test_malformed_preset_file(tmp_path, photos):
    preset = tmp_path / "broken.toml"
    preset.write_text("task = [unclosed\n")
    proc = edgegen("train", "--preset", str(preset), "--data", str(photos), cwd=tmp_path)
    assert_one_line_error(proc, "broken.toml", "not valid TOML")


def test_corrupt_image_is_skipped_and_training_goes_on(tmp_path, photos):
    (photos / "zz_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    shutil.copy(photos / "img0.png", photos / "img9.png")
    proc = edgegen(
        "train", "--data", str(photos), *TINY, "--steps", "3", "--out", "run", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "zz_corrupt.png" in warnings[0]
    assert (tmp_path / "run" / "last.safetensors").is_file()
    assert "done:" in proc.stdout
