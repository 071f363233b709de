"""Upsampling layers of the generator: exact bicubic as a fixed convolution, and sub-pixel conv.

``BicubicUpsample`` computes what ``F.interpolate(x, scale_factor=s, mode="bicubic",
align_corners=False)`` computes (PyTorch's cubic kernel, a = -0.75, borders clamped), as
replicate padding, a fixed grouped 5x5 convolution with one filter per output phase, and a pixel
shuffle. Exported to ONNX this is Pad + Conv + DepthToSpace instead of a cubic Resize, which
onnxruntime's CPU provider runs single-threaded and slowly: in the x2 `small` SR model the skip's
Resize took 33% of the fp32 time and 48% of the int8 time (``benchmarks/sr_speed.py``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CUBIC_A = -0.75  # PyTorch's (and ONNX Resize's default under pytorch_half_pixel export)
TAPS = 5  # every phase of x2, x3 and x4 reads input offsets -2 .. +2
PAD = TAPS // 2


def _cubic(x: float) -> float:
    """Keys' cubic convolution kernel with a = CUBIC_A (PyTorch's upsample_bicubic2d)."""
    a, x = CUBIC_A, abs(x)
    if x <= 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return 0.0


def phase_filters(scale: int) -> np.ndarray:
    """(scale, TAPS) 1-D filters: output pixel ``scale * i + r`` is the dot product of filter
    ``r`` with input pixels ``i - 2 .. i + 2``, as align_corners=False maps it to source
    coordinate ``i + (r + 0.5) / scale - 0.5``."""
    filters = np.zeros((scale, TAPS), np.float64)
    for r in range(scale):
        src = (r + 0.5) / scale - 0.5
        base = math.floor(src)
        t = src - base
        for k, offset in enumerate(range(base - 1, base + 3)):
            filters[r, offset + PAD] = _cubic(t + 1 - k)
    return filters


class BicubicUpsample(nn.Module):
    """x``scale`` bicubic upsampling of ``channels`` channels, equal to F.interpolate's bicubic
    (align_corners=False) up to float rounding; see the module docstring for why."""

    weight: torch.Tensor

    def __init__(self, scale: int, channels: int) -> None:
        super().__init__()
        if scale < 2:
            raise ValueError(f"BicubicUpsample needs scale >= 2, got {scale}")
        self.scale, self.channels = scale, channels
        f = phase_filters(scale)
        # Output channel c * s^2 + ry * s + rx holds phase (ry, rx) of input channel c: the order
        # pixel_shuffle reads.
        phases = np.einsum("yi,xj->yxij", f, f).reshape(scale * scale, 1, TAPS, TAPS)
        kernel = np.tile(phases, (channels, 1, 1, 1)).astype(np.float32)
        # A constant, not a parameter: not trained, not in the state dict (checkpoints from
        # before this layer load unchanged).
        self.register_buffer("weight", torch.from_numpy(kernel), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (PAD, PAD, PAD, PAD), mode="replicate")  # PyTorch clamps at the borders
        x = F.conv2d(x, self.weight.to(x.dtype), groups=self.channels)
        return F.pixel_shuffle(x, self.scale)


def sr_upsamplers(
    channels: int, scale: int, act: nn.Module, in_channels: int
) -> tuple[nn.Module, nn.Module]:
    """(features' upsampler, the global skip's upsampler) of a generator at ``scale``: one
    sub-pixel convolution at low resolution (ESPCN: cheaper than transposed convs and free of
    their checkerboard artefacts) and exact bicubic; identities at scale 1."""
    if scale == 1:
        return nn.Identity(), nn.Identity()
    conv = nn.Conv2d(channels, channels * scale * scale, kernel_size=3, padding=1)
    return SubPixelConv(conv, nn.PixelShuffle(scale), act), BicubicUpsample(scale, in_channels)


def global_skip(x: torch.Tensor, upsample: nn.Module, out_channels: int) -> torch.Tensor:
    """The input as the output's base: upsampled (bicubic for SR) and mapped to the output's
    channels (gray repeated to RGB, RGB averaged to gray)."""
    x = upsample(x)
    if x.shape[1] == 1 and out_channels == 3:
        return x.expand(-1, 3, -1, -1)
    if x.shape[1] == 3 and out_channels == 1:
        return x.mean(dim=1, keepdim=True)
    return x


class SubPixelConv(nn.Sequential):
    """conv -> PixelShuffle -> activation (ESPCN), as ``nn.Sequential(conv, shuffle, act)`` so
    the state dict keys stay ``upsample.0`` / ``upsample.2``.

    A ReLU or LeakyReLU acts on each value alone, so it commutes with the shuffle (a
    permutation) and is applied first: the same output, and in an int8 export the activation
    fuses into the conv's QLinearConv instead of running after the shuffle in float. PReLU's
    per-channel slopes belong to the shuffled channels, and keep the original order.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, shuffle, act = self[0], self[1], self[2]
        if isinstance(act, nn.ReLU | nn.LeakyReLU):
            return shuffle(act(conv(x)))
        return act(shuffle(conv(x)))
