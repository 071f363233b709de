"""The Generator and `edgegen run`/`verify` with torch, onnx and scikit-image made unimportable."""

from __future__ import annotations

import numpy as np
from test_import_light import run_python
from tinymodels import exported


def test_generator_runs_without_heavy_packages(tmp_path):
    models = exported(("fp32", "fp16", "int8"))
    model = models / "model.fp32.onnx"
    np.save(tmp_path / "img.npy", np.random.default_rng(0).integers(0, 256, (20, 30, 3), np.uint8))
    code = f"""
import numpy as np, sys
import edgegen.runtime
assert 'onnxruntime' not in sys.modules and 'PIL' not in sys.modules
from edgegen.runtime import Generator
gen = Generator({str(model)!r}, device="cpu")
out = gen(np.load({str(tmp_path / "img.npy")!r}))
assert out.shape == (20, 30, 3) and out.dtype == np.uint8
assert gen.verify()
from edgegen.runtime.images import write_image, read_image
write_image({str(tmp_path / "o.png")!r}, out)
assert (read_image({str(tmp_path / "o.png")!r}) == out).all()
heavy = {{'torch', 'onnx', 'skimage'}} & {{m.split('.')[0] for m in sys.modules}}
assert not heavy, heavy
from edgegen.cli.main import main
main(['verify', {str(model)!r}])
"""
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert "PASS" in proc.stdout


def test_io_binding_session_runs_without_heavy_packages(tmp_path):
    model = exported(("fp32", "fp16", "int8")) / "model.fp16.onnx"
    code = f"""
import logging, sys
import numpy as np
from edgegen.runtime import Generator
from edgegen.runtime.errors import EdgegenError
logging.basicConfig(level=logging.INFO)
gen = Generator({str(model)!r}, io_binding=True, cpu_mem_arena=False)  # device auto
x = np.random.default_rng(0).random((2, 3, 16, 24), dtype=np.float32)
a = gen.infer(x)
b = gen.infer(x[:1])
assert np.array_equal(gen.infer(x), a) and np.array_equal(a[:1], b)
try:
    Generator({str(model)!r}, device="cpu", cuda_graph=True)
    raise SystemExit("cuda_graph on the CPU was not refused")
except EdgegenError as exc:
    print("refused:", exc)
heavy = {{'torch', 'onnx', 'skimage'}} & {{m.split('.')[0] for m in sys.modules}}
assert not heavy, heavy
"""
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert "refused: cuda_graph cannot apply on the CPU" in proc.stdout
    assert "device auto: using CPUExecutionProvider" in proc.stderr
