"""What keeping the global skip in float does to int8: the shipped models' fp32 files quantized
(plain post-training int8, calibrated on the training photos) with the skip in float, as export
does, and with it quantized, as export did before; PSNR on the held-out photos beside fp32.

"The skip" is the output Add (``y = F(x) + skip``) and, for SR, the bicubic skip's pad and pixel
shuffle (its conv stays float either way). Needs `make data`.

    .venv/bin/python benchmarks/int8_skip.py --json benchmarks/results/int8-skip.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx

import edgegen.export.int8 as int8
from edgegen.evaluation.degrade import BicubicDownscale, GaussianNoise
from edgegen.evaluation.photos import find_images, load_all
from edgegen.export.calib import calibration_inputs
from edgegen.runtime.files import atomic_write_text
from edgegen.runtime.generator import Generator
from edgegen.runtime.zoo import models_root
from edgegen.train.data import val_samples
from edgegen.train.validate import psnr_ssim

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT = ROOT / "data" / "photos" / "held-out"


def skip_quantized(graph: onnx.GraphProto) -> list[str]:
    """The float nodes of the earlier rule: only the SR skip's bicubic conv."""
    return [
        n.name
        for n in graph.node
        if n.op_type == "Conv" and n.name.startswith(int8.FLOAT_NODE_PREFIXES)
    ]


def mean_psnr(path: Path, pairs: list[Any]) -> float:
    gen = Generator(path, device="cpu", threads=2, tile=0)
    values = [psnr_ssim(p.clean, np.clip(gen(p.degraded), 0, 1))[0] for p in pairs]
    return float(np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="denoise-blind,sr2")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not HELD_OUT.is_dir():
        raise SystemExit(f"{HELD_OUT} is missing: run `make data` first")
    photos = load_all(find_images(HELD_OUT), 3, HELD_OUT).photos
    result: dict[str, Any] = {}
    for name in args.models.split(","):
        fp32 = models_root() / name / "model.fp32.onnx"
        spec = Generator(fp32, device="cpu", tile=0).spec
        degradation = BicubicDownscale(spec.scale) if spec.scale > 1 else GaussianNoise(25.0)
        pairs = val_samples(photos, degradation, spec.scale)
        calib = calibration_inputs(spec, str(ROOT / "data" / "photos" / "train"), 64)
        row = {"fp32": mean_psnr(fp32, pairs)}
        with tempfile.TemporaryDirectory() as tmp:
            float_skip = Path(tmp) / "float-skip.onnx"
            int8.quantize_int8(fp32, float_skip, calib, progress=False)
            row["int8_skip_float"] = mean_psnr(float_skip, pairs)
            rule = int8._float_nodes
            int8._float_nodes = skip_quantized  # the earlier rule, for this measurement only
            try:
                quantized = Path(tmp) / "quantized-skip.onnx"
                int8.quantize_int8(fp32, quantized, calib, progress=False)
            finally:
                int8._float_nodes = rule
            row["int8_skip_quantized"] = mean_psnr(quantized, pairs)
        row["degradation"] = "bicubic x2" if spec.scale > 1 else "gaussian sigma 25"
        result[name] = row
        print(name, json.dumps(row), flush=True)
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
