"""The flat residual generator against the multi-scale U-Net, as shipped-denoiser candidates.

Both were trained with the same recipe (data, augmentations, noise, patch, batch, learning rate)
for the same CPU time, side by side (one thread each), then exported to int8 the same way. This
measures, in one run, on the held-out photos (data/photos/held-out) at sigma 25: the
PSNR of each fp32 and int8 export, the worst colour shift, and the int8 latency on onnxruntime's
CPU provider at 512x512 (median of alternating runs), and records each run's validation curve.

    .venv/bin/python benchmarks/denoise_arch.py --runs runs/long-flat,runs/long-unet \\
        --exports runs/long-flat/export,runs/long-unet/export \\
        --json benchmarks/results/denoise-arch.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from _machine import describe
from shipped_models import held_out, run_model

from edgegen.evaluation.degrade import GaussianNoise
from edgegen.evaluation.quality import colour_shift, worst_shift
from edgegen.runtime.files import atomic_write_text
from edgegen.runtime.generator import Generator
from edgegen.train.data import val_samples
from edgegen.train.validate import psnr_ssim

SIGMAS = (25.0,)


def curve(run: Path) -> list[dict[str, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{"step": r["step"], "seconds": r["seconds"], "val_psnr": r["psnr"]} for r in rows]


def latency(gens: dict[str, Generator], side: int, runs: int) -> dict[str, float]:
    x = np.random.default_rng(0).random((1, 3, side, side), dtype=np.float32)
    times: dict[str, list[float]] = {k: [] for k in gens}
    for gen in gens.values():
        gen.infer(x)
    for _ in range(runs):
        for key, gen in gens.items():
            start = time.perf_counter()
            gen.infer(x)
            times[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="Comma-separated training runs.")
    parser.add_argument("--exports", required=True, help="Their export folders, in order.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timing-runs", type=int, default=15)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/denoise-arch.json"))
    args = parser.parse_args()
    runs = [Path(r) for r in args.runs.split(",")]
    exports = [Path(e) for e in args.exports.split(",")]
    photos = held_out()
    result: dict[str, Any] = {"machine": describe(), "threads": args.threads, "candidates": {}}
    int8: dict[str, Generator] = {}
    for run, export in zip(runs, exports, strict=True):
        name = run.name
        manifest = json.loads((export / "model.int8.manifest.json").read_text())
        spec = manifest["spec"]
        entry: dict[str, Any] = {
            "arch": spec["arch"],
            "arch_params": spec["arch_params"],
            "receptive_field": spec["receptive_field"],
            "curve": curve(run),
            "sigmas": {},
        }
        gens = {
            p: Generator(export / f"model.{p}.onnx", threads=args.threads, tile=0)
            for p in ("fp32", "int8")
        }
        int8[name] = gens["int8"]
        for sigma in SIGMAS:
            pairs = val_samples(photos, GaussianNoise(sigma))
            row = {}
            for precision, gen in gens.items():
                outs = [run_model(gen, p.degraded) for p in pairs]
                values = [psnr_ssim(p.clean, o)[0] for p, o in zip(pairs, outs, strict=True)]
                worst = worst_shift(
                    [colour_shift(p.clean, o) for p, o in zip(pairs, outs, strict=True)]
                )
                row[precision] = {
                    "psnr": float(np.mean(values)),
                    "colour_shift_lsb": worst.overall,
                    "colour_shift_dark_lsb": worst.dark,
                }
            entry["sigmas"][f"sigma{sigma:g}"] = row
            print(name, sigma, {k: round(v["psnr"], 2) for k, v in row.items()}, flush=True)
        result["candidates"][name] = entry
    for name, ms in latency(int8, 512, args.timing_runs).items():
        result["candidates"][name]["int8_ms_512"] = ms
        print(name, f"int8 {ms:.1f} ms at 512x512", flush=True)
    atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
