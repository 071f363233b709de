"""Mean matching on and off, side by side: the shipped denoiser's colour bias, PSNR and time.

The same files, the same noisy held-out photos (those of benchmarks/shipped_models.py: sigma 25,
the first draw every tool uses and SHIFT_DRAWS - 1 more), each run through ``Generator(f)``
twice, with ``match_means`` on (the default for a Gaussian denoiser) and off (the network's own
output). Time: the same photos, on and off alternating photo by photo, the median of --runs.

    .venv/bin/python benchmarks/mean_matching.py --json benchmarks/results/mean-matching.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from _machine import describe
from shipped_models import (
    SHIFT_DRAWS,
    colour_bias,
    held_out,
    noise_draws,
    over,
    run_model,
    scores,
)

from edgegen.evaluation.degrade import GaussianNoise
from edgegen.evaluation.quality import worst_shift
from edgegen.runtime.files import atomic_write_text
from edgegen.runtime.generator import Generator
from edgegen.train.data import val_samples

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "denoise-blind")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    pairs = val_samples(held_out(), GaussianNoise(25.0))
    extra = noise_draws(pairs, 25.0, SHIFT_DRAWS)
    result: dict[str, Any] = {
        "machine": describe(),
        "threads": args.threads,
        "sigma": 25.0,
        "draws": SHIFT_DRAWS,
        "photos": len(pairs),
        "precisions": {},
    }
    for f in sorted(args.model.glob("model.*.onnx")):
        precision = f.name.split(".")[1]
        gens = {
            mode: Generator(f, device="cpu", threads=args.threads, tile=0, match_means=mode == "on")
            for mode in ("on", "off")
        }
        rows: dict[str, Any] = {}
        for mode, gen in gens.items():
            summary, _, first = scores(pairs, [run_model(gen, p.degraded) for p in pairs])
            bias = colour_bias(gen, pairs, first, extra)
            worst = worst_shift(bias)
            rows[mode] = {
                "psnr": summary["psnr"],
                "colour_bias_lsb": worst.overall,
                "colour_bias_dark_lsb": worst.dark,
                "photos_over_half_lsb": over([b.to_dict() for b in bias], "mean_lsb"),
                "dark_regions_over_half_lsb": over([b.to_dict() for b in bias], "dark_mean_lsb"),
            }
        seconds = {mode: 0.0 for mode in gens}
        for pair in pairs:
            for gen in gens.values():
                gen(pair.degraded)  # warm-up
            for mode, gen in gens.items():
                times = []
                for _ in range(args.runs):
                    start = time.perf_counter()
                    gen(pair.degraded)
                    times.append(time.perf_counter() - start)
                seconds[mode] += statistics.median(times)
        for mode in gens:
            rows[mode]["seconds"] = seconds[mode]
        rows["time_ratio_on_over_off"] = seconds["on"] / seconds["off"]
        result["precisions"][precision] = rows
        print(precision, json.dumps(rows, indent=1), flush=True)
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
