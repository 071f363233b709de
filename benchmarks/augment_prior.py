"""What the augmentations do to the training prior: the share of saturated pixels (8-bit 255)
and of near-white ones (200 to 254) in training patches with and without ``gamma`` and
``bright``, beside the held-out photos' own shares.

A denoiser learns the statistics of what it trains on. ``gamma`` (exposure gain up to 1.6,
clipped) makes saturated highlights far more common than in photos; a model trained only with it
expects saturation where there is none. ``bright`` adds near-white content without adding
saturated pixels: what a model needs to learn that a bright area under clipped noise is not
saturated. Patches are drawn as training draws them (seeded
random 96-pixel crops, each photo equally likely).

    .venv/bin/python benchmarks/augment_prior.py --json benchmarks/results/augment-prior.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edgegen.evaluation.photos import find_images, load_all
from edgegen.runtime.files import atomic_write_text
from edgegen.train.data.dataset import augment_patch

ROOT = Path(__file__).resolve().parents[1]
SATURATED = 254.5 / 255.0
NEAR_WHITE = 199.5 / 255.0


def saturated_share(images: list[np.ndarray]) -> float:
    return float(np.mean([(im >= SATURATED).mean() for im in images]))


def near_white_share(images: list[np.ndarray]) -> float:
    return float(np.mean([((im >= NEAR_WHITE) & (im < SATURATED)).mean() for im in images]))


def augmented(crops: list[np.ndarray], name: str) -> list[np.ndarray]:
    return [
        augment_patch(c, np.random.default_rng(i), frozenset({name})) for i, c in enumerate(crops)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=2000)
    parser.add_argument("--patch", type=int, default=96)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    folders = {name: ROOT / "data" / "photos" / name for name in ("train", "held-out")}
    if not all(f.is_dir() for f in folders.values()):
        raise SystemExit("data/photos is missing: run `make data` first")
    photos = {k: load_all(find_images(f), 3, f).photos for k, f in folders.items()}
    rng = np.random.default_rng(0)
    crops = []
    for _ in range(args.patches):
        image = photos["train"][int(rng.integers(len(photos["train"])))].as_float()
        y = int(rng.integers(image.shape[0] - args.patch + 1))
        x = int(rng.integers(image.shape[1] - args.patch + 1))
        crops.append(image[y : y + args.patch, x : x + args.patch])
    sets = {
        "held_out_photos": [p.as_float() for p in photos["held-out"]],
        "train_patches": crops,
        "train_patches_gamma": augmented(crops, "gamma"),
        "train_patches_bright": augmented(crops, "bright"),
    }
    result = {
        "saturated_share": {k: saturated_share(v) for k, v in sets.items()},
        "near_white_share": {k: near_white_share(v) for k, v in sets.items()},
        "patches": args.patches,
        "patch": args.patch,
    }
    text = json.dumps(result, indent=2) + "\n"
    print(text, end="")
    if args.json:
        atomic_write_text(args.json, text)


if __name__ == "__main__":
    main()
