"""int8 speed (and accuracy): fp32 ONNX against static QDQ int8, U8S8 and S8S8, in one run.

Builds the `small` denoiser (or the model of --checkpoint), exports fp32 ONNX, quantizes it three
times with edgegen's quantize_int8 (uint8 activations + int8 weights, with and without the
channel padding of edgegen.export.int8_layout, and int8 + int8; per-channel, MinMax, calibrated
on crops of the bundled training photos) and times the three on onnxruntime's
CPU provider, alternating, so drift in machine load hits all alike. Prints median ms and the
speed-up against fp32. With --checkpoint it also scores each variant against ground truth on the
three held-out photos (the spec's degradation, fixed seeds) and reports the PSNR drop.

    .venv/bin/python benchmarks/int8_speed.py [--checkpoint runs/demo] [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from _machine import describe

from edgegen.evaluation.degrade import degradation_from_spec
from edgegen.evaluation.photos import bundled_paths, load_all
from edgegen.export.calib import calibration_inputs
from edgegen.export.int8 import quantize_int8
from edgegen.export.onnx_export import export_fp32 as export_model_fp32
from edgegen.runtime.spec import ModelSpec
from edgegen.train.checkpoint import load_checkpoint
from edgegen.train.config import TrainConfig
from edgegen.train.data import val_samples
from edgegen.train.trainer import build_model, make_spec
from edgegen.train.validate import psnr_ssim

VARIANTS: dict[str, dict[str, Any]] = {  # name -> quantize_int8 options
    "int8 U8S8": {"activation_type": "uint8", "weight_type": "int8"},  # the default
    "U8S8 no pad": {"activation_type": "uint8", "weight_type": "int8", "channel_pad": False},
    "int8 S8S8": {"activation_type": "int8", "weight_type": "int8"},
}


def load_model(checkpoint: str | None, **untrained: Any) -> tuple[torch.nn.Module, ModelSpec]:
    """The model and spec of a checkpoint; without one, the `small` model at its initial weights
    (speed does not depend on them): a denoiser, or what the ``TrainConfig`` options in
    ``untrained`` make (e.g. ``task="sr", scale=2``)."""
    if checkpoint is None:
        torch.manual_seed(0)
        cfg = TrainConfig(**{"arch": "small", **untrained})
        model = build_model(cfg)
        return model.eval(), make_spec(cfg, model)
    ckpt = load_checkpoint(checkpoint)
    cfg = TrainConfig.from_dict(ckpt.record["config"], where=f"config in {ckpt.path}")
    model = build_model(cfg)
    model.load_state_dict(ckpt.weights)
    return model.eval(), ModelSpec.from_dict(ckpt.record["spec"])


def export_fp32(model: torch.nn.Module, spec: ModelSpec, path: Path) -> None:
    """The fp32 artifact exactly as `edgegen export` builds it (traced, checked, slimmed)."""
    proto, _slim = export_model_fp32(model, spec)
    onnx.save(proto, str(path))


def session(path: Path, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # onnxruntime's idle workers spin for a while after each run. Alternating three sessions on
    # a 2-core machine, the previous session's spinning threads then steal the cores from the
    # next one (measured here: fp32 76 ms alternating vs 46 ms one session at a time); without
    # spinning, alternating gives the same times as one session run alone.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def fused_ops(path: Path, threads: int) -> dict[str, int]:
    """Op counts of the graph onnxruntime runs: shows which convolutions got int8 kernels."""
    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        # Extended level: the int8 fusions happen there, and the saved graph stays portable.
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        counts: dict[str, int] = {}
        for node in onnx.load(opts.optimized_model_filepath).graph.node:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def time_all(
    sessions: dict[str, ort.InferenceSession], x: np.ndarray, warmup: int, runs: int
) -> dict[str, list[float]]:
    for sess in sessions.values():
        for _ in range(warmup):
            sess.run(None, {"input": x})
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(runs):
        for name, sess in sessions.items():  # alternate: one run of each per round
            start = time.perf_counter()
            sess.run(None, {"input": x})
            times[name].append((time.perf_counter() - start) * 1000.0)
    return times


def accuracy(
    model: torch.nn.Module, spec: ModelSpec, sessions: dict[str, ort.InferenceSession]
) -> dict[str, Any]:
    """PSNR/SSIM vs ground truth on the held-out photos, and the error vs fp32 in 8-bit steps
    (LSB): mean, 99.9th percentile and largest, over every pixel of the three photos."""
    photos = load_all(bundled_paths("val"), spec.in_channels).photos
    pairs = val_samples(photos, degradation_from_spec(spec.degradation), spec.scale)
    per: dict[str, dict[str, Any]] = {"torch": {}, **{name: {} for name in sessions}}
    errors: dict[str, list[np.ndarray]] = {name: [] for name in sessions if name != "fp32"}
    for pair in pairs:
        x = np.ascontiguousarray(pair.degraded.transpose(2, 0, 1)[None])
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        outputs = {"torch": ref, **{n: s.run(None, {"input": x})[0] for n, s in sessions.items()}}
        fp32 = np.clip(outputs["fp32"], 0.0, 1.0)
        for name, out in outputs.items():
            img = np.ascontiguousarray(np.clip(out, 0.0, 1.0)[0].transpose(1, 2, 0))
            psnr, ssim = psnr_ssim(pair.clean, img)
            per[name][pair.photo] = {"psnr": round(psnr, 3), "ssim": round(ssim, 4)}
            if name in errors:
                errors[name].append((np.abs(np.clip(out, 0.0, 1.0) - fp32) * 255.0).ravel())
    result: dict[str, Any] = {}
    for name, images in per.items():
        psnr = float(np.mean([v["psnr"] for v in images.values()]))
        ssim = float(np.mean([v["ssim"] for v in images.values()]))
        result[name] = {"psnr": round(psnr, 3), "ssim": round(ssim, 4), "images": images}
        if name in errors:
            err = np.concatenate(errors[name])
            result[name]["err_vs_fp32_lsb"] = {
                "mean": round(float(err.mean()), 3),
                "p99.9": round(float(np.percentile(err, 99.9)), 2),
                "max": round(float(err.max()), 2),
            }
    for name in sessions:
        result[name]["psnr_drop_vs_fp32"] = round(result["fp32"]["psnr"] - result[name]["psnr"], 3)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--checkpoint", help="a run folder or .safetensors: its model, and PSNR too")
    ap.add_argument("--size", type=int, default=256, help="input height and width")
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--runs", type=int, default=30, help="timed runs of each variant")
    ap.add_argument("--calib-count", type=int, default=32)
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results/int8_speed.json")
    args = ap.parse_args()

    model, spec = load_model(args.checkpoint)
    calib = calibration_inputs(spec, "bundled", count=args.calib_count, size=64, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"fp32": Path(tmp) / "fp32.onnx"}
        export_fp32(model, spec, paths["fp32"])
        settings: dict[str, Any] = {}
        for name, options in VARIANTS.items():
            paths[name] = Path(tmp) / f"{name.replace(' ', '_')}.onnx"
            start = time.perf_counter()
            settings[name] = quantize_int8(
                paths["fp32"], paths[name], calib, progress=False, **options
            )
            settings[name]["seconds"] = round(time.perf_counter() - start, 2)
        sessions = {name: session(path, args.threads) for name, path in paths.items()}
        sizes = {name: path.stat().st_size for name, path in paths.items()}
        ops = {name: fused_ops(path, args.threads) for name, path in paths.items()}

        x = np.random.default_rng(0).random((1, spec.in_channels, args.size, args.size))
        times = time_all(sessions, x.astype(np.float32), args.warmup, args.runs)
        acc = accuracy(model, spec, sessions) if args.checkpoint else None

    base = statistics.median(times["fp32"])
    rows: dict[str, Any] = {}
    print(
        f"{describe()}, onnxruntime {ort.__version__} CPU, {args.threads} threads, "
        f"1x{spec.in_channels}x{args.size}x{args.size}, median of {args.runs} alternating runs"
    )
    print(f"{'variant':10} {'median ms':>10} {'speed-up':>9} {'size KB':>8}")
    for name, values in times.items():
        median = statistics.median(values)
        rows[name] = {
            "median_ms": round(median, 2),
            "min_ms": round(min(values), 2),
            "speedup_vs_fp32": round(base / median, 3),
            "size_bytes": sizes[name],
            "ops_after_ort_fusion": ops[name],
        }
        print(f"{name:10} {median:10.2f} {base / median:8.2f}x {sizes[name] / 1024:8.0f}")
    if acc is not None:
        print(f"PSNR vs ground truth, held-out photos (torch {acc['torch']['psnr']:.3f} dB):")
        for name in sessions:
            drop = f"  drop {acc[name]['psnr_drop_vs_fp32']:.3f} dB" if name != "fp32" else ""
            e = acc[name].get("err_vs_fp32_lsb")
            err = ""
            if e:
                err = (
                    f"  LSB vs fp32: mean {e['mean']:.2f} p99.9 {e['p99.9']:.1f} max {e['max']:.1f}"
                )
            print(f"{name:10} {acc[name]['psnr']:7.3f} dB{drop}{err}")

    result = {
        "machine": describe(),
        "onnxruntime": ort.__version__,
        "torch": torch.__version__,
        "provider": "CPUExecutionProvider",
        "threads": args.threads,
        "allow_spinning": False,
        "input": [1, spec.in_channels, args.size, args.size],
        "arch": spec.arch_params,
        "checkpoint": args.checkpoint,
        "warmup": args.warmup,
        "runs": args.runs,
        "calibration": {"source": "bundled", "count": args.calib_count, "size": 64, "seed": 0},
        "variants": rows,
        "quantize_settings": settings,
        "accuracy": acc,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
