"""Quality of `edgegen train --preset denoise-small` on the held-out photos, with its curve.

Runs the acceptance command exactly as a user would (a subprocess of the CLI), then writes the
curve (step, training seconds, PSNR, SSIM) as CSV and a JSON summary to benchmarks/results/.
`--also-seed` trains the seed recipe (plain Adam, MSE, ReLU after the add) beside it.

    .venv/bin/python benchmarks/train_quality.py [--steps 1100] [--also-seed]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import describe

RESULTS = Path(__file__).parent / "results"
GOAL_DB = 30.1


def run(preset: str, steps: int, out: Path) -> list[dict]:
    cmd = [
        sys.executable,
        "-m",
        "edgegen.cli",
        "train",
        "--preset",
        preset,
        "--steps",
        str(steps),
        "--batch",
        "16",
        "--patch",
        "64",
        "--val-every",
        "100",
        "--no-progress",
        "--out",
        str(out),
    ]
    print("$", " ".join(cmd[3:]), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"wall {time.perf_counter() - t0:.0f}s", flush=True)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return rows


def save(name: str, rows: list[dict]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / f"{name}-curve.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "seconds", "psnr", "ssim", *sorted(rows[-1]["images"])])
        for r in rows:
            per_image = [f"{r['images'][k]['psnr']:.3f}" for k in sorted(r["images"])]
            writer.writerow(
                [r["step"], r["seconds"], f"{r['psnr']:.3f}", f"{r['ssim']:.4f}", *per_image]
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", type=int, default=1100)
    ap.add_argument("--also-seed", action="store_true")
    args = ap.parse_args()
    summary = {"machine": describe(), "steps": args.steps}
    with tempfile.TemporaryDirectory() as tmp:
        presets = ["denoise-small"] + (["seed"] if args.also_seed else [])
        for preset in presets:
            rows = run(preset, args.steps, Path(tmp) / preset)
            save(preset, rows)
            final = rows[-1]
            summary[preset] = {
                "psnr": round(final["psnr"], 3),
                "ssim": round(final["ssim"], 4),
                "input_psnr": round(final["input_psnr"], 3),
                "train_seconds": final["seconds"],
                "per_image_psnr": {k: round(v["psnr"], 3) for k, v in final["images"].items()},
            }
            print(
                f"{preset}: {final['psnr']:.2f} dB (input {final['input_psnr']:.2f} dB), "
                f"{final['seconds']:.0f}s training",
                flush=True,
            )
    (RESULTS / "train_quality.json").write_text(json.dumps(summary, indent=2) + "\n")
    ok = summary["denoise-small"]["psnr"] >= GOAL_DB
    print(f"denoise-small {'meets' if ok else 'MISSES'} the {GOAL_DB} dB goal")


if __name__ == "__main__":
    main()
