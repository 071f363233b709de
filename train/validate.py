"""Validation on whole held-out photos: PSNR and SSIM (scikit-image) of the output and of the
degraded input, so every number comes with the baseline it improves on, and the output's colour
shift (the worst per-channel mean error, overall and over dark regions: a tint PSNR hardly sees)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgegen.evaluation.quality import colour_shift
from edgegen.evaluation.samples import Sample


@dataclass
class ImageScore:
    name: str
    psnr: float
    ssim: float
    input_psnr: float
    input_ssim: float
    shift: float = 0.0  # the worst channel's mean error over the photo, in 8-bit steps
    dark_shift: float = 0.0  # the same over its dark regions (0 where it has none)


def psnr_ssim(reference: np.ndarray, image: np.ndarray) -> tuple[float, float]:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    psnr = peak_signal_noise_ratio(reference, image, data_range=1.0)
    ssim = structural_similarity(reference, image, data_range=1.0, channel_axis=2)
    return float(psnr), float(ssim)


def input_baseline(pair: Sample, scale: int) -> np.ndarray:
    """What the degraded input looks like at the output's size (bicubic for SR)."""
    if scale == 1:
        return pair.degraded
    from PIL import Image

    h, w = _clean(pair).shape[:2]
    planes = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(pair.degraded[..., c]), mode="F").resize(
                (w, h), Image.Resampling.BICUBIC
            )
        )
        for c in range(pair.degraded.shape[2])
    ]
    return np.clip(np.stack(planes, axis=2), 0.0, 1.0)


class Validator:
    def __init__(self, pairs: list[Sample], scale: int) -> None:
        if any(p.clean is None for p in pairs):
            raise ValueError("validation samples need their clean ground truth")
        self.pairs = pairs
        self.scale = scale
        self.baselines = [psnr_ssim(_clean(p), input_baseline(p, scale)) for p in pairs]

    @torch.no_grad()
    def run(self, model: nn.Module, device: torch.device) -> list[ImageScore]:
        was_training = model.training
        model.eval()
        scores = []
        try:
            for pair, (in_psnr, in_ssim) in zip(self.pairs, self.baselines, strict=True):
                x = torch.from_numpy(pair.degraded.transpose(2, 0, 1).copy())[None].to(device)
                out = run_padded(model, x, self.scale).float().clamp_(0.0, 1.0)
                y = out[0].cpu().numpy().transpose(1, 2, 0)
                y = np.ascontiguousarray(y)
                psnr, ssim = psnr_ssim(_clean(pair), y)
                shift = colour_shift(_clean(pair), y)
                scores.append(
                    ImageScore(pair.photo, psnr, ssim, in_psnr, in_ssim, shift.overall, shift.dark)
                )
        finally:
            model.train(was_training)
        return scores


def run_padded(model: nn.Module, x: torch.Tensor, scale: int) -> torch.Tensor:
    """``model(x)`` for any input size: a network whose sides must be multiples of its
    ``pad_multiple`` (a U-Net) gets the input reflect-padded at the bottom and right, as the
    runtime pads it, and its output cropped back."""
    multiple = int(getattr(model, "pad_multiple", 1))
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if not ph and not pw:
        return model(x)
    mode = "reflect" if ph < h and pw < w else "replicate"
    y = model(F.pad(x, (0, pw, 0, ph), mode=mode))
    return y[..., : h * scale, : w * scale]


def _clean(pair: Sample) -> np.ndarray:
    assert pair.clean is not None
    return pair.clean


def summarize(scores: list[ImageScore]) -> dict[str, float]:
    return {
        "psnr": float(np.mean([s.psnr for s in scores])),
        "ssim": float(np.mean([s.ssim for s in scores])),
        "input_psnr": float(np.mean([s.input_psnr for s in scores])),
        "input_ssim": float(np.mean([s.input_ssim for s in scores])),
        "shift": max(s.shift for s in scores),
        "dark_shift": max(s.dark_shift for s in scores),
    }
