"""Throughput of `edgegen run --engine dask` against a single-process `edgegen run`, side by side.

For each image size, N noisy photos (crops of scikit-image's photos with sigma-25 noise, PNG)
go through the model with each variant below, as a user runs it (the CLI as a child process,
wall time from start to exit, the outputs removed between runs). Variants run in turns, round
after round, so that the machine's load falls on all of them alike:

- ``single``: `edgegen run MODEL IN -o OUT` (one process, onnxruntime on every core)
- ``dask-1``: `--engine dask --workers 1` (one worker process, every core)
- ``dask-2``: `--engine dask --workers 2` (two worker processes, the cores split between them)

and each once more on a single image, which measures what a run costs before its first image
(starting the cluster included). The JSON records every wall time, the median per variant,
images/s over the N images (the single-image run's time taken off), each variant's ratio to
``single``, and the engine's cost per image: (dask-1's time per image) - (single's).

    .venv/bin/python benchmarks/cluster.py [--model models/denoise-blind/model.int8.onnx]
        [--images 200] [--sizes 96,256] [--rounds 3] [--json benchmarks/results/cluster.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _machine import describe
from PIL import Image
from skimage import data as skdata

ROOT = Path(__file__).resolve().parents[1]
VARIANTS: dict[str, list[str]] = {
    "single": [],
    "dask-1": ["--engine", "dask", "--workers", "1"],
    "dask-2": ["--engine", "dask", "--workers", "2"],
}


def make_images(folder: Path, count: int, size: int) -> None:
    photos = [skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket()]
    rng = np.random.default_rng(size)
    folder.mkdir(parents=True)
    for i in range(count):
        photo = photos[i % len(photos)]
        y = int(rng.integers(0, photo.shape[0] - size))
        x = int(rng.integers(0, photo.shape[1] - size))
        crop = photo[y : y + size, x : x + size].astype(np.float32)
        noisy = np.clip(crop + rng.normal(0, 25, crop.shape), 0, 255).round().astype(np.uint8)
        Image.fromarray(noisy).save(folder / f"img{i:04d}.png")


def wall(model: Path, inputs: Path, out: Path, extra: list[str]) -> float:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "edgegen.cli", "run", str(model), str(inputs), "-o", str(out)]
    start = time.perf_counter()
    proc = subprocess.run([*cmd, "--no-progress", *extra], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd + extra)} failed: {proc.stderr.strip()}")
    return seconds


def measure(model: Path, size: int, count: int, rounds: int, root: Path) -> dict[str, Any]:
    many, one = root / f"in{size}", root / f"one{size}"
    make_images(many, count, size)
    one.mkdir()
    shutil.copy(next(iter(sorted(many.iterdir()))), one)
    times: dict[str, dict[str, list[float]]] = {v: {"many": [], "one": []} for v in VARIANTS}
    for r in range(rounds):
        order = list(VARIANTS) if r % 2 == 0 else list(reversed(VARIANTS))
        for name in order:
            times[name]["one"].append(wall(model, one, root / "out", VARIANTS[name]))
            times[name]["many"].append(wall(model, many, root / "out", VARIANTS[name]))
            print(name, size, times[name]["many"][-1], times[name]["one"][-1], flush=True)
    row: dict[str, Any] = {"size": size, "images": count, "variants": {}}
    for name, t in times.items():
        many_s, one_s = statistics.median(t["many"]), statistics.median(t["one"])
        row["variants"][name] = {
            "seconds": t["many"],
            "one_image_seconds": t["one"],
            "median_s": round(many_s, 3),
            "one_image_median_s": round(one_s, 3),
            "images_per_s": round((count - 1) / max(1e-9, many_s - one_s), 2),
        }
    base = row["variants"]["single"]["images_per_s"]
    for v in row["variants"].values():
        v["throughput_vs_single"] = round(v["images_per_s"] / base, 3)
    per_image = {n: 1.0 / v["images_per_s"] for n, v in row["variants"].items()}
    row["engine_ms_per_image"] = round(1000 * (per_image["dask-1"] - per_image["single"]), 2)
    row["cluster_start_s"] = round(
        row["variants"]["dask-1"]["one_image_median_s"]
        - row["variants"]["single"]["one_image_median_s"],
        2,
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models/denoise-blind/model.int8.onnx")
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--sizes", default="96,256")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgegen-cluster-bench-") as tmp:
        rows = [
            measure(args.model, int(s), args.images, args.rounds, Path(tmp))
            for s in args.sizes.split(",")
        ]
    model = args.model.resolve()
    result = {
        "machine": describe(),
        "model": str(model.relative_to(ROOT) if model.is_relative_to(ROOT) else model),
        "command": "python benchmarks/cluster.py " + " ".join(sys.argv[1:]),
        "rows": rows,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        sys.path.insert(0, str(ROOT))
        from edgegen.runtime.files import atomic_write_text

        atomic_write_text(args.json, text + "\n")


if __name__ == "__main__":
    main()
