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
from edgegen.runtime.cli import main
main(['verify', {str(model)!r}])
"""
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert "PASS" in proc.stdout
