"""What each training stage of the shipped denoiser bought: every stage's best checkpoint in
PyTorch (fp32), on the held-out photos at sigma 15, 25 and 50 beside BM3D on the same noisy
photos (shipped_models.py's cache), the worst colour shift at sigma 25, and the bias on flat
grey patches (the mean error of a 128x128 patch of one grey level under sigma-25 noise, which
shows a learned brightening of bright areas that photos mix with everything else).

It also measures the colour-shift metric itself on a restoration that moves no colour: a
Gaussian blur of 0.8 pixel of each clean photo, its dark regions taken as edgegen takes them
(16x16 blocks of dark clean mean luma) and pixel by pixel (dark clean pixels), which picks the
dark side of every edge and so counts the blur as a shift.

The stages are shipped_models.STAGES' runs under --runs (what `make models` trains). Needs
`make data`.

    .venv/bin/python benchmarks/denoise_stages.py --json benchmarks/results/denoise-stages.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _machine import describe
from shipped_models import SIGMAS, STAGES, bm3d_cached, held_out, scores

from edgegen.evaluation.degrade import GaussianNoise
from edgegen.evaluation.quality import DARK_LUMA, LUMA, MIN_DARK_PIXELS, colour_shift
from edgegen.runtime.files import atomic_write_text
from edgegen.train.checkpoint import load_model
from edgegen.train.data import val_samples
from edgegen.train.validate import run_padded

GREYS = (24, 96, 160, 200, 220, 235, 245)  # 8-bit levels of the flat patches
FLAT_SIGMA = 25.0


def denoise(model: torch.nn.Module, noisy: np.ndarray) -> np.ndarray:
    """As validation runs it: padded to the network's multiple (a U-Net stage) and cropped."""
    x = torch.from_numpy(np.ascontiguousarray(noisy.transpose(2, 0, 1))[None])
    with torch.no_grad():
        out = run_padded(model, x, 1)[0].numpy().transpose(1, 2, 0)
    return np.clip(out, 0.0, 1.0)


def flat_bias(model: torch.nn.Module) -> dict[str, float]:
    """Mean error (LSB) inside a flat grey patch, its 16-pixel border left out."""
    rng = np.random.default_rng(0)
    degrade = GaussianNoise(FLAT_SIGMA)  # clipped and rounded to 8 bits, as every tool degrades
    bias = {}
    for grey in GREYS:
        clean = np.full((128, 128, 3), grey / 255, np.float32)
        noisy = degrade(clean, rng)
        inner = (denoise(model, noisy) - clean)[16:-16, 16:-16]
        bias[str(grey)] = float(inner.mean() * 255)
    return bias


def blur_reference(photos: list[Any], pairs: list[Any], sigma: float = 0.8) -> dict[str, Any]:
    """The worst dark-region "shift" of a colour-exact blur, by blocks and by pixels (LSB)."""
    from scipy.ndimage import gaussian_filter

    by_block: dict[str, float] = {}
    by_pixel: dict[str, float] = {}
    for photo, pair in zip(photos, pairs, strict=True):
        clean = pair.clean.astype(np.float64)
        blurred = np.stack(
            [gaussian_filter(clean[..., c], sigma) for c in range(clean.shape[-1])], axis=-1
        )
        by_block[photo.name] = colour_shift(clean, blurred).dark
        dark = clean.reshape(-1, 3) @ LUMA < DARK_LUMA
        error = (blurred - clean).reshape(-1, 3)[dark] * 255
        if int(dark.sum()) >= MIN_DARK_PIXELS:  # as for blocks: too few is no dark region
            by_pixel[photo.name] = float(np.abs(error.mean(axis=0)).max())
    return {
        "blur_sigma_px": sigma,
        "worst_dark_blocks_lsb": max(by_block.values()),
        "worst_dark_pixels_lsb": max(by_pixel.values()),
        "worst_dark_pixels_photo": max(by_pixel, key=lambda k: by_pixel[k]),
        "dark_blocks_lsb": by_block,
        "dark_pixels_lsb": by_pixel,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/models"), help="Training runs.")
    parser.add_argument("--model", default="denoise-blind", choices=sorted(STAGES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    photos = held_out()
    pairs = {s: val_samples(photos, GaussianNoise(s)) for s in SIGMAS}
    bm3d = {s: scores(p, [bm3d_cached(x.degraded, s) for x in p])[0] for s, p in pairs.items()}
    blur = blur_reference(photos, pairs[FLAT_SIGMA])
    print(json.dumps({k: v for k, v in blur.items() if not isinstance(v, dict)}), flush=True)
    rows: list[dict[str, Any]] = []
    for stage in STAGES[args.model]:
        model, _, ckpt = load_model(args.runs / stage["run"], prefer="best")
        model.eval()
        row: dict[str, Any] = {**stage, "step": ckpt.step, "loss": ckpt.record["config"]["loss"]}
        for sigma, sigma_pairs in pairs.items():
            summary = scores(sigma_pairs, [denoise(model, p.degraded) for p in sigma_pairs])[0]
            key = f"sigma{sigma:g}"
            row[f"psnr_{key}"] = summary["psnr"]
            row[f"vs_bm3d_{key}"] = summary["psnr"] - bm3d[sigma]["psnr"]
            if sigma == FLAT_SIGMA:
                row["colour_shift_lsb"] = summary["colour_shift_lsb"]
                row["colour_shift_dark_lsb"] = summary["colour_shift_dark_lsb"]
        row["flat_bias_lsb"] = flat_bias(model)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        result = {
            "machine": describe(),
            "command": "python benchmarks/denoise_stages.py --json " + str(args.json),
            "held_out": [p.name for p in photos],
            "bm3d": {f"sigma{s:g}": v["psnr"] for s, v in bm3d.items()},
            "stages": rows,
            "colour_exact_blur": blur,
        }
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
