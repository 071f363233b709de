"""The wheel as `pip install .` builds it: the shipped models inside, and no setuptools warning
that a data folder of models/ is a package missing from pyproject's `packages`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import tomllib

ROOT = Path(__file__).resolve().parents[1]
ABSENT = "is absent from the `packages` configuration"


def _setuptools() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _model_folders() -> list[Path]:
    return sorted(p for p in (ROOT / "models").iterdir() if p.is_dir() and p.name != "__pycache__")


def test_every_model_folder_is_a_listed_package():
    packages = _setuptools()["packages"]
    folders = _model_folders()
    assert folders
    missing = [f.name for f in folders if f"edgegen.models.{f.name}" not in packages]
    assert not missing, f"add edgegen.models.<name> to pyproject's packages for {missing}"


def test_wheel_ships_the_models_without_a_packaging_warning(tmp_path):
    # A copy of what the build reads, so that its build/ and egg-info stay out of the checkout.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in sorted(set(_setuptools()["package-dir"].values())):
        shutil.copytree(ROOT / folder, src / folder, ignore=skip)
    out = tmp_path / "wheel"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--verbose", "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    warned = [line.strip() for line in log.splitlines() if ABSENT in line]
    assert not warned, warned
    (wheel,) = out.glob("edgegen-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert "edgegen/models/denoise-blind/model.int8.onnx" in names
    for folder in _model_folders():
        for path in folder.iterdir():
            if path.suffix in (".onnx", ".json", ".npz", ".md"):
                assert f"edgegen/models/{folder.name}/{path.name}" in names
    # the web target's page and ES module, which `edgegen web` copies from the package
    for name in ("edgegen.mjs", "app.mjs", "index.html", "node_runner.mjs"):
        assert f"edgegen/runtime/web/{name}" in names
