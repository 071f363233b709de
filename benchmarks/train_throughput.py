"""Training throughput: `edgegen train` against a plain PyTorch loop, side by side in one run.

Both train the same model (same arch, batch and patch size) for the same number of steps on the
same machine, alternating, and report patches/s; the plain loop feeds pre-cut in-memory crops of
the same photos (no DataLoader, no validation, no checkpoints), so the ratio is what edgegen's
data pipeline, schedule, clipping and bookkeeping cost. Goal: ratio >= 0.9.

    .venv/bin/python benchmarks/train_throughput.py [--arch small] [--steps 60] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _machine import describe

from edgegen.evaluation.photos import bundled_paths, load_all
from edgegen.train import archs
from edgegen.train.config import TrainConfig
from edgegen.train.trainer import train


def plain_loop(arch: str, steps: int, batch: int, patch: int, seed: int = 0) -> float:
    """The loop a PyTorch user would write by hand: crops in memory, Adam, MSE. Patches/s."""
    torch.manual_seed(seed)
    photos = [p.as_float() for p in load_all(bundled_paths("train"), 3).photos]
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(steps * batch):
        img = photos[rng.integers(len(photos))]
        top = rng.integers(img.shape[0] - patch + 1)
        left = rng.integers(img.shape[1] - patch + 1)
        crops.append(img[top : top + patch, left : left + patch].transpose(2, 0, 1))
    clean_all = torch.from_numpy(np.ascontiguousarray(np.stack(crops)))
    model = archs.build(arch)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    for step in range(steps):
        clean = clean_all[step * batch : (step + 1) * batch]
        noisy = (clean + torch.randn_like(clean) * (25 / 255)).clamp_(0, 1)
        loss = F.mse_loss(model(noisy), clean)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * batch / (time.perf_counter() - start)


def edgegen_loop(arch: str, steps: int, batch: int, patch: int, workers: int) -> float:
    """`edgegen train` itself; its recorded training seconds exclude validation. Patches/s."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            arch=arch,
            steps=steps,
            batch=batch,
            patch=patch,
            workers=workers,
            val_every=10**6,
            out=str(Path(tmp) / "run"),
        )
        result = train(cfg, progress=False, log=lambda _m: None)
    return steps * batch / result.curve[-1]["seconds"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--arch", default="small")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=TrainConfig().workers)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    plain, ours = [], []
    for _ in range(args.repeats):  # alternate, so drift in machine load hits both alike
        plain.append(plain_loop(args.arch, args.steps, args.batch, args.patch))
        ours.append(edgegen_loop(args.arch, args.steps, args.batch, args.patch, args.workers))
    result = {
        "machine": describe(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "arch": args.arch,
        "batch": args.batch,
        "patch": args.patch,
        "steps": args.steps,
        "workers": args.workers,
        "plain_patches_per_s": [round(v, 1) for v in plain],
        "edgegen_patches_per_s": [round(v, 1) for v in ours],
        "ratio": round(statistics.median(ours) / statistics.median(plain), 3),
    }
    for label, values in (("plain PyTorch loop", plain), ("edgegen train", ours)):
        print(
            f"{label:19}: {statistics.median(values):8.1f} patches/s  {[round(v) for v in values]}"
        )
    print(f"ratio edgegen/plain: {result['ratio']:.3f}  (goal >= 0.9)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
