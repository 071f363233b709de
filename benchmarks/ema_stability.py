"""What ``--ema`` changes in a run: the same fine-tune with and without a moving average of the
weights, validated every 100 steps on the held-out photos. The weights trained are the same in
both (the average never feeds back; this script checks it bit for bit), so the two curves differ
only in which model is validated: the last step's weights, or their average.

The runs (the shipped denoiser's last stage, fine-tuned for 1000 steps at half its rate; the
results file's config names that stage's run by the folder it was trained in, runs/dn-bright):

    edgegen train --preset denoise-blind-bright --init runs/models/denoise-blind --lr 1e-4 \\
        --steps 1000 --warmup 20 --seed 5 --val-every 100 --out runs/ema-off
    edgegen train --preset denoise-blind-bright --init runs/models/denoise-blind --lr 1e-4 \\
        --steps 1000 --warmup 20 --seed 5 --val-every 100 --ema 0.995 --out runs/ema-on
    .venv/bin/python benchmarks/ema_stability.py --json benchmarks/results/ema-stability.json

Reported per validation: mean PSNR and the worst colour shift over the photos (each photo's
noise is drawn at its own σ of the blind range); and how much that shift moves from one
validation to the next, the mean absolute change: how much of a checkpoint's colour shift is
the draw of where training stopped.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path
from typing import Any

import torch

from edgegen.runtime.files import atomic_write_text
from edgegen.train.checkpoint import load_checkpoint


def curve(run: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    return [
        {"step": r["step"], "psnr": r["psnr"], "shift": r["shift"], "dark_shift": r["dark_shift"]}
        for r in rows
        if r["step"] > 0  # step 0 is the starting model, the same in both runs
    ]


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    shifts = [r["shift"] for r in rows]
    return {
        "curve": rows,
        "shift_mean_abs_change": statistics.mean(abs(b - a) for a, b in itertools.pairwise(shifts)),
        "shift_range": [min(shifts), max(shifts)],
        "psnr_range": [min(r["psnr"] for r in rows), max(r["psnr"] for r in rows)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--off", type=Path, default=Path("runs/ema-off"))
    parser.add_argument("--on", type=Path, default=Path("runs/ema-on"))
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/ema-stability.json"))
    args = parser.parse_args()
    off, on = load_checkpoint(args.off, prefer="last"), load_checkpoint(args.on, prefer="last")
    config_off = {k: v for k, v in off.record["config"].items() if k not in ("ema", "out")}
    config_on = {k: v for k, v in on.record["config"].items() if k not in ("ema", "out")}
    if config_off != config_on or on.train_weights is None:
        raise SystemExit("the runs must differ in --ema (and --out) only, the second with --ema")
    same = all(torch.equal(v, on.train_weights[k]) for k, v in off.weights.items())
    result = {
        "config": config_on,
        "ema": on.record["config"]["ema"],
        "same_trained_weights": same,
        "off": summary(curve(args.off)),
        "on": summary(curve(args.on)),
    }
    atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    for name in ("off", "on"):
        s = result[name]
        print(
            f"ema {name:3s}: worst shift {s['shift_range'][0]:.2f}-{s['shift_range'][1]:.2f} LSB, "
            f"mean change {s['shift_mean_abs_change']:.2f} LSB per validation; "
            f"PSNR {s['psnr_range'][0]:.2f}-{s['psnr_range'][1]:.2f} dB"
        )
    print(f"same trained weights: {same}; wrote {args.json}")


if __name__ == "__main__":
    main()
