"""Colour shift: whether a restored photo's colours moved, overall and where it is dark.

PSNR can stay high while a model tints a photo: a mean error of a few 8-bit steps in one
channel over a large flat background costs little PSNR but turns a dark teal into blue-black.
So each channel's mean error (output minus clean, in LSB) is measured over the whole photo and
over its dark regions, where noise clipped at 0 is skewed and a shift shows first.

A dark region is made of 16x16 blocks whose clean mean luma is dark, not of dark pixels. Selected
pixel by pixel, "dark" picks the dark side of every edge, where any restoration that is not
perfect (a denoiser averages a little across edges) lifts the values toward the bright side:
a Gaussian blur of 0.8 pixel of the clean photo, which moves no colour, measured 9.85 LSB of
"dark shift" on a textured held-out photo that way, and at most 0.24 LSB over dark blocks, whose
means a blur keeps (benchmarks/denoise_stages.py). The blocks see what the eye sees as a tint: a
region's colour, not its sharpness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DARK_LUMA = 0.25  # a block is dark where the clean photo's mean luma (ITU-R 601) is below this
DARK_BLOCK = 16  # pixels a side: a region's colour, averaged over more than a denoiser's blur
MIN_DARK_PIXELS = 1024  # fewer pixels in dark blocks: the photo has no dark region to measure
LUMA = np.array([0.299, 0.587, 0.114], np.float64)


@dataclass(frozen=True)
class ColourShift:
    mean_lsb: tuple[float, ...]  # per channel, over the whole photo
    dark_mean_lsb: tuple[float, ...] | None  # per channel, over the dark blocks (None: none)
    dark_share: float  # share of the photo's pixels in dark blocks

    @property
    def overall(self) -> float:
        """The largest absolute channel mean error over the whole photo (LSB)."""
        return float(max(abs(v) for v in self.mean_lsb))

    @property
    def dark(self) -> float:
        """The same over the dark regions (0 where the photo has none)."""
        return float(max(abs(v) for v in self.dark_mean_lsb)) if self.dark_mean_lsb else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "mean_lsb": list(self.mean_lsb),
            "dark_mean_lsb": list(self.dark_mean_lsb) if self.dark_mean_lsb else None,
            "dark_share": self.dark_share,
        }


def colour_shift(clean: np.ndarray, output: np.ndarray) -> ColourShift:
    """Per-channel mean error of ``output`` against ``clean`` (HWC floats in [0, 1]) in LSB."""
    if clean.shape != output.shape:
        raise ValueError(f"shapes differ: {clean.shape} and {output.shape}")
    channels = clean.shape[-1]
    diff = (output.astype(np.float64) - clean.astype(np.float64)) * 255.0
    error = diff.reshape(-1, channels)
    # Whole blocks only: the last rows and columns short of a block are left out of the dark.
    b = DARK_BLOCK
    h, w = clean.shape[0] // b * b, clean.shape[1] // b * b
    block_clean = clean[:h, :w].astype(np.float64).reshape(h // b, b, w // b, b, channels)
    block_error = diff[:h, :w].reshape(h // b, b, w // b, b, channels).mean(axis=(1, 3))
    means = block_clean.mean(axis=(1, 3)).reshape(-1, channels)
    luma = means @ LUMA if channels == 3 else means[:, 0]
    dark = luma < DARK_LUMA
    dark_pixels = int(dark.sum()) * b * b
    dark_mean = (
        tuple(float(v) for v in block_error.reshape(-1, channels)[dark].mean(axis=0))
        if dark_pixels >= MIN_DARK_PIXELS
        else None
    )
    share = dark_pixels / float(clean.shape[0] * clean.shape[1])
    return ColourShift(tuple(float(v) for v in error.mean(axis=0)), dark_mean, share)


def mean_shift(draws: Sequence[ColourShift]) -> ColourShift:
    """The colour shift of one photo averaged over several noise draws: its bias.

    One draw's mean error holds the noise left in the output besides the model's bias. Over a
    whole photo that noise is hundredths of an LSB; over a dark region of a couple of thousand
    pixels it is tenths, as much as the bias to be measured. Each draw's means are over the same
    pixels and blocks (the dark blocks are chosen on the clean photo), so their mean is the mean
    error over all draws."""
    if not draws:
        raise ValueError("no draws to average")
    first = draws[0]
    if any(
        len(d.mean_lsb) != len(first.mean_lsb)
        or (d.dark_mean_lsb is None) != (first.dark_mean_lsb is None)
        or d.dark_share != first.dark_share
        for d in draws
    ):
        raise ValueError("the draws are not of one photo")
    mean = tuple(float(v) for v in np.mean([d.mean_lsb for d in draws], axis=0))
    darks = [d.dark_mean_lsb for d in draws if d.dark_mean_lsb is not None]
    dark = tuple(float(v) for v in np.mean(darks, axis=0)) if darks else None
    return ColourShift(mean, dark, first.dark_share)


@dataclass(frozen=True)
class WorstShift:
    overall: float
    dark: float


def worst_shift(shifts: Sequence[ColourShift]) -> WorstShift:
    """The largest shift over photos and channels, overall and in dark regions."""
    return WorstShift(
        max((s.overall for s in shifts), default=0.0), max((s.dark for s in shifts), default=0.0)
    )
