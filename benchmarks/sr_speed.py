"""Super-resolution speed: the x2 `small` generator's skip and upsampler, old and new, side by side.

The SR generator adds a bicubic upsampling of its input (the global skip) to what its sub-pixel
upsampler produces. Two formulations of the same function are timed in one run, on
onnxruntime's CPU provider (2 threads, 1x3x256x256 in, alternating blocks of 4 runs after one
untimed run):

- legacy: the skip as ``F.interpolate(mode="bicubic")`` (ONNX cubic Resize) and the upsampler as
  conv -> PixelShuffle -> ReLU (the ReLU runs after the shuffle, in float, in int8 models);
- current: the skip as edgegen.train.archs.upsample.BicubicUpsample (replicate Pad, a fixed
  grouped 5x5 Conv, DepthToSpace) and the ReLU before the shuffle (it fuses into the conv).

Each in fp32 and int8 (edgegen's defaults: U8S8, per-channel, channel padding, the bicubic skip
kept in float), plus the current model with its skip quantized too. With --checkpoint (a
trained SR run) it also reports PSNR against ground truth on the held-out photos, and the
largest difference between the two formulations' fp32 outputs.

    .venv/bin/python benchmarks/sr_speed.py [--checkpoint runs/zoo/sr2] [--rounds 8]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from _machine import describe
from int8_speed import accuracy, export_fp32, load_model
from torch import nn

from edgegen.evaluation.timing import time_alternating
from edgegen.export import int8 as int8_module
from edgegen.export.calib import calibration_inputs
from edgegen.export.int8 import quantize_int8
from edgegen.train.archs import ResidualGenerator


class Interpolate(nn.Module):
    """The legacy skip: F.interpolate's bicubic, exported as a cubic Resize."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)


def legacy(model: nn.Module) -> nn.Module:
    """The same weights in the old formulation: Resize skip, ReLU after the shuffle."""
    assert isinstance(model, ResidualGenerator)
    old = copy.deepcopy(model)
    old.skip_upsample = Interpolate(model.params.scale)
    assert isinstance(old.upsample, nn.Sequential)
    old.upsample = nn.Sequential(*old.upsample)  # plain Sequential: conv, shuffle, act
    return old.eval()


def session(path: Path, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--checkpoint", help="a trained SR run: adds PSNR against ground truth")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8, help="alternating rounds of 4 timed runs")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results/sr_speed.json")
    args = ap.parse_args()

    model, spec = load_model(args.checkpoint, task="sr", scale=2)
    old = legacy(model)
    calib = calibration_inputs(spec, "bundled", count=32, size=64, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"legacy fp32": Path(tmp) / "legacy.fp32.onnx", "fp32": Path(tmp) / "fp32.onnx"}
        export_fp32(old, spec, paths["legacy fp32"])
        export_fp32(model, spec, paths["fp32"])
        paths["legacy int8"] = Path(tmp) / "legacy.int8.onnx"
        quantize_int8(paths["legacy fp32"], paths["legacy int8"], calib, progress=False)
        paths["int8"] = Path(tmp) / "int8.onnx"
        settings = quantize_int8(paths["fp32"], paths["int8"], calib, progress=False)
        paths["int8, skip quantized"] = Path(tmp) / "int8-skipq.onnx"
        keep = int8_module.FLOAT_NODE_PREFIXES
        int8_module.FLOAT_NODE_PREFIXES = ()  # type: ignore[assignment]
        try:
            quantize_int8(paths["fp32"], paths["int8, skip quantized"], calib, progress=False)
        finally:
            int8_module.FLOAT_NODE_PREFIXES = keep

        sessions = {name: session(path, args.threads) for name, path in paths.items()}
        x = np.random.default_rng(0).random((1, spec.in_channels, 256, 256), dtype=np.float32)
        outs = {name: s.run(None, {"input": x})[0] for name, s in sessions.items()}
        fp32_gap = float(np.abs(outs["fp32"] - outs["legacy fp32"]).max())
        # One untimed call after each switch, then blocks of 4 (edgegen bench's timing).
        calls = {name: partial(s.run, None, {"input": x}) for name, s in sessions.items()}
        seconds = time_alternating(calls, args.rounds, block=4)
        times = {name: [t * 1000.0 for t in values] for name, values in seconds.items()}
        acc: dict[str, Any] | None = None
        if args.checkpoint:
            # accuracy() scores sessions against the one named "fp32" and the given torch model.
            legacy_acc = accuracy(
                old, spec, {"fp32": sessions["legacy fp32"], "int8": sessions["legacy int8"]}
            )
            current = {k: v for k, v in sessions.items() if not k.startswith("legacy")}
            acc = {name: v["psnr"] for name, v in accuracy(model, spec, current).items()}
            acc["legacy fp32"] = legacy_acc["fp32"]["psnr"]
            acc["legacy int8"] = legacy_acc["int8"]["psnr"]

    base = statistics.median(times["legacy fp32"])
    rows: dict[str, Any] = {}
    print(f"{describe()}, onnxruntime {ort.__version__} CPU, {args.threads} threads, 256x256 in")
    print(f"fp32 outputs, current vs legacy: max |diff| {fp32_gap:.2e}")
    for name, values in times.items():
        median = statistics.median(values)
        rows[name] = {
            "median_ms": round(median, 2),
            "speedup_vs_legacy_fp32": round(base / median, 3),
        }
        psnr = f"  PSNR vs GT {acc[name]:.3f} dB" if acc else ""
        if acc:
            rows[name]["psnr_vs_gt"] = acc[name]
        print(f"{name:22} {median:8.2f} ms {base / median:6.2f}x{psnr}")
    record = {
        "machine": describe(),
        "onnxruntime": ort.__version__,
        "threads": args.threads,
        "input": [1, spec.in_channels, 256, 256],
        "checkpoint": args.checkpoint,
        "rounds": args.rounds,
        "fp32_max_abs_diff_current_vs_legacy": fp32_gap,
        "int8_settings": {k: settings[k] for k in ("float_nodes", "channel_pad")},
        "variants": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
