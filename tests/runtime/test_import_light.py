"""The runtime must work with only numpy + onnxruntime: no torch, onnx or scikit-image."""

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Makes the heavy packages unimportable inside the child, as if they were not installed.
BLOCKER = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'torch', 'onnx', 'skimage', 'safetensors', 'onnxslim'}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _Block())
"""


def run_python(code: str, blocked: str | None = None) -> subprocess.CompletedProcess:
    blocker = (
        BLOCKER
        if blocked is None
        else BLOCKER.replace(
            "{'torch', 'onnx', 'skimage', 'safetensors', 'onnxslim'}", repr({blocked})
        )
    )
    return subprocess.run(
        [sys.executable, "-c", blocker + code], capture_output=True, text=True, timeout=120
    )


def test_the_runtime_core_loads_numpy_and_onnxruntime_only():
    """Every module of edgegen.runtime, imported where torch and onnx are not installed, loads
    no click, no Pillow (until an image is read) and no other edgegen package."""
    proc = run_python(
        "import importlib, json, pkgutil, sys, edgegen.runtime as rt\n"
        "for m in pkgutil.iter_modules(rt.__path__):\n"
        "    importlib.import_module('edgegen.runtime.' + m.name)\n"
        "top = {m.split('.')[0] for m in sys.modules}\n"
        "print(json.dumps(sorted(top & {'click', 'PIL', 'tqdm', 'rich', 'skimage', 'numpy'})))\n"
        "print(json.dumps(sorted({m for m in sys.modules if m.startswith('edgegen.')})))"
    )
    assert proc.returncode == 0, proc.stderr
    third_party, edgegen_modules = (json.loads(line) for line in proc.stdout.splitlines())
    assert third_party == ["numpy"]  # onnxruntime too, once a session is opened
    assert edgegen_modules and all(m.startswith("edgegen.runtime") for m in edgegen_modules)


def test_runtime_imports_without_heavy_packages():
    proc = run_python(
        "import edgegen.runtime, edgegen.cli.main, sys\n"
        "heavy = {'torch', 'onnx', 'skimage', 'PIL'} & {m.split('.')[0] for m in sys.modules}\n"
        "assert not heavy, heavy\n"
        "print(edgegen.runtime.ModelSpec(task='denoise').to_json())"
    )
    assert proc.returncode == 0, proc.stderr
    assert '"task": "denoise"' in proc.stdout


def test_help_works_and_train_names_the_extra_without_torch():
    proc = run_python("from edgegen.cli.main import main; main(['--help'])")
    assert proc.returncode == 0, proc.stderr
    assert "train" in proc.stdout

    proc = run_python("from edgegen.cli.main import main; main(['train', '--steps', '1'])")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "pip install 'edgegen[train]'" in lines[0]
    assert "Traceback" not in proc.stderr


def test_a_dependency_missing_inside_a_command_is_one_line(tmp_path):
    """onnxslim is imported only when export runs; its absence must still be one clear line."""
    from edgegen.train.checkpoint import save_checkpoint
    from edgegen.train.config import TrainConfig
    from edgegen.train.trainer import build_model, make_spec

    cfg = TrainConfig(arch="tiny")
    model = build_model(cfg)
    record = {"step": 0, "config": cfg.to_dict(), "spec": make_spec(cfg, model).to_dict()}
    ckpt = save_checkpoint(tmp_path, "best", record, model.state_dict())
    code = (
        "from edgegen.cli.main import main; "
        f"main(['export', {str(ckpt)!r}, '--out', {str(tmp_path / 'out')!r}])"
    )
    proc = run_python(code, blocked="onnxslim")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "onnxslim" in lines[0] and "edgegen[train]" in lines[0], proc.stderr
    assert not any((tmp_path / "out").glob("model.*"))


@pytest.mark.slow
def test_cpu_only_venv(tmp_path):
    """A real venv with `pip install .[cpu]` only: no torch anywhere."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    pip = [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    constraints = ["-c", str(ROOT / "requirements" / "constraints.txt")]
    subprocess.run([*pip, *constraints, f"{ROOT}[cpu]"], check=True, timeout=600)
    check = subprocess.run(
        [str(py), "-c", "import importlib.util as u; print(u.find_spec('torch'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert check.stdout.strip() == "None"
    proc = subprocess.run(
        [str(py), "-c", "import edgegen.runtime, onnxruntime; print(edgegen.runtime.__version__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    exe = env_dir / "bin" / "edgegen"
    help_proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert help_proc.returncode == 0 and "train" in help_proc.stdout
    train_proc = subprocess.run(
        [str(exe), "train"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert train_proc.returncode == 2
    assert "edgegen[train]" in train_proc.stderr and "Traceback" not in train_proc.stderr

    # The runtime's job in that venv: run a real photo through an exported model and verify it.
    from tinymodels import fp32_model

    from edgegen.evaluation.photos import bundled_paths

    model = fp32_model()
    photo = tmp_path / "photo.png"
    shutil.copy(bundled_paths("val")[0], photo)  # chelsea.png, 451x300
    run_proc = subprocess.run(
        [str(exe), "run", str(model), str(photo), "-o", str(tmp_path / "out"), "--no-progress"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert run_proc.returncode == 0, run_proc.stderr
    from PIL import Image

    with Image.open(tmp_path / "out" / "photo.png") as out, Image.open(photo) as src:
        assert out.size == src.size and out.mode == "RGB"
    verify_proc = subprocess.run(
        [str(exe), "verify", str(model)], capture_output=True, text=True, cwd=tmp_path
    )
    assert verify_proc.returncode == 0, verify_proc.stdout + verify_proc.stderr
    assert "PASS" in verify_proc.stdout
