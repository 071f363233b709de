"""Colour shift: whether a restored photo's colours moved, overall and where it is dark.

PSNR can stay high while a model tints a photo: a mean error of a few 8-bit steps in one
channel over a large flat background costs little PSNR but turns a dark teal into blue-black.
So each channel's mean error (output minus clean, in LSB) is measured over the whole photo and
over its dark regions, where noise clipped at 0 is skewed and a shift shows first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DARK_LUMA = 0.25  # a pixel is dark where the clean photo's luma (ITU-R 601) is below this
MIN_DARK_PIXELS = 1024  # fewer dark pixels than this: the photo has no dark region to measure
LUMA = np.array([0.299, 0.587, 0.114], np.float64)


@dataclass(frozen=True)
class ColourShift:
    mean_lsb: tuple[float, ...]  # per channel, over the whole photo
    dark_mean_lsb: tuple[float, ...] | None  # per channel, over the dark pixels (None: none)
    dark_share: float  # share of the photo's pixels that are dark

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
    error = (output.astype(np.float64) - clean.astype(np.float64)).reshape(-1, channels) * 255.0
    flat = clean.reshape(-1, channels).astype(np.float64)
    luma = flat @ LUMA if channels == 3 else flat[:, 0]
    dark = luma < DARK_LUMA
    dark_mean = (
        tuple(float(v) for v in error[dark].mean(axis=0))
        if int(dark.sum()) >= MIN_DARK_PIXELS
        else None
    )
    return ColourShift(tuple(float(v) for v in error.mean(axis=0)), dark_mean, float(dark.mean()))


@dataclass(frozen=True)
class WorstShift:
    overall: float
    dark: float


def worst_shift(shifts: Sequence[ColourShift]) -> WorstShift:
    """The largest shift over photos and channels, overall and in dark regions."""
    return WorstShift(
        max((s.overall for s in shifts), default=0.0), max((s.dark for s in shifts), default=0.0)
    )
