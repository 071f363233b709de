"""benchmarks/gpu.py end to end on the CPU (--smoke, tiny models), before any device time is
spent: --prepare exports here, and the run imports edgegen as on the GPU machine, where it is
not installed (through its symlink tree) and onnxslim / onnxconverter-common are absent. The
CUDA-only variants are skipped with their reason; everything else runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The GPU machine: edgegen not installed (the editable finder removed), and no onnxslim or
# onnxconverter-common.
AS_ON_THE_GPU_MACHINE = """
import runpy, sys
sys.meta_path[:] = [f for f in sys.meta_path if "Editable" not in repr(f)]
sys.path[:] = [p for p in sys.path if "__editable__" not in p]
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'onnxslim', 'onnxconverter_common'}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _Block())
sys.argv = ["benchmarks/gpu.py", *sys.argv[1:]]
runpy.run_path("benchmarks/gpu.py", run_name="__main__")
"""


@pytest.mark.slow
def test_gpu_script_smoke_run(tmp_path):
    models, out = tmp_path / "models", tmp_path / "result.json"
    prep = subprocess.run(
        [sys.executable, "benchmarks/gpu.py", "--prepare", "--smoke", "--models", str(models)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert prep.returncode == 0, prep.stderr
    for name in ("model.fp32.onnx", "model.fp16.onnx", "model.fp16io.onnx", "run/best.json"):
        assert (models / "tiny" / name).is_file(), name
    args = ["--smoke", "--models", str(models), "--json", str(out), "--rounds", "1", "--block", "2"]
    proc = subprocess.run(
        [sys.executable, "-c", AS_ON_THE_GPU_MACHINE, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"edgegen imported from {ROOT} through" in proc.stderr  # the symlink tree
    result = json.loads(out.read_text())
    rows = {(r["shape"], r["variant"]): r for r in result["rows"]}
    for shape in ("1x3x48x64", "2x3x32x32"):
        fp32 = rows[(shape, "edgegen fp32")]
        assert fp32["median_ms"] > 0 and fp32["psnr_vs_torch_fp32"] > 60
        assert rows[(shape, "edgegen fp16 I/O")]["psnr_vs_torch_fp32"] > 50
        assert rows[(shape, "torch fp32")]["vs_torch_best"] == 1.0
        graph = rows[(shape, "torch fp16 channels_last + CUDA graph")]
        assert graph["median_ms"] is None and "CUDA" in graph["skipped"]
    assert all(v["passed"] for v in result["verify_on_device"].values())
    assert result["training"]["steps"] == 2 and result["training"]["patches_per_s"] > 0
    assert result["acceptance"][0]["status"] == "n/a"
    assert "GPU thresholds: smoke run on the CPU" in proc.stdout
