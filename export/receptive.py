"""What tiling may assume about a network: its receptive field, measured, and the error that
tiles actually make against the whole image, measured on the verification photos.

The receptive field is read from input gradients of output pixels: the pixels one depends on are
those with a non-zero gradient (or, where the forward cannot be differentiated, those whose change
moves the output). A field that reaches every edge of the largest probe input is
recorded as global (attention over the image, global pooling, instance norm): every output pixel
then depends on the whole image and tiles change the output.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgegen.runtime.spec import ModelSpec

from .onnx_export import round_up

# Square probe inputs, smallest first; a field still touching every edge at the last is global.
PROBE_SIDES = (48, 128, 320)
BLOCK = 16  # window phases measured: a window up to this (or the pad multiple) wide
PIXEL_BATCH = 8  # one pixel's field per batch element, this many per forward


@dataclass(frozen=True)
class Field:
    receptive_field: int | None  # input pixels; None when global
    global_field: bool
    probe_side: int  # the probe input's side that decided


def measure_receptive_field(
    module: nn.Module, spec: ModelSpec, sides: Sequence[int] = PROBE_SIDES
) -> Field:
    """The width (input pixels) of the region an output pixel near the centre depends on:
    twice the farthest it reaches, plus one, over every phase of a window up to :data:`BLOCK`
    (or the pad multiple).

    Window attention's reach depends on where a pixel sits in its window (a pixel on a window's
    edge reaches into the neighbour): one pixel per phase is measured, on the diagonal, and the
    widest kept. Whether the field is global is decided first, from a block of output pixels
    covering every phase, at each probe side in turn.
    """
    module = module.eval().float()
    pm = spec.pad_multiple
    block = max(BLOCK, pm)
    for side in (round_up(s, pm) for s in sides):
        start = max(0, side // 2 - block // 2)
        pixels = list(range(start, min(side, start + block)))
        support = _support(module, spec, side, [pixels])[0]
        rows, cols = np.flatnonzero(support.any(axis=1)), np.flatnonzero(support.any(axis=0))
        if rows.size == 0:  # the output ignores its input: nothing to overlap
            return Field(1, False, side)
        if (rows[0], cols[0], rows[-1], cols[-1]) == (0, 0, side - 1, side - 1):
            continue  # reaches every edge: a larger probe, or global
        reach = 0
        for p, one in zip(pixels, _support(module, spec, side, [[p] for p in pixels]), strict=True):
            rows, cols = np.flatnonzero(one.any(axis=1)), np.flatnonzero(one.any(axis=0))
            if rows.size:
                reach = max(reach, p - rows[0], rows[-1] - p, p - cols[0], cols[-1] - p)
        return Field(2 * int(reach) + 1, False, side)
    return Field(None, True, side)


def _support(
    module: nn.Module, spec: ModelSpec, side: int, groups: list[list[int]]
) -> list[np.ndarray]:
    """:func:`_gradient_support`, or :func:`_perturbation_support` for a network whose forward
    autograd cannot differentiate (an in-place write into a tensor it saved, as PLKSR's
    inference path does)."""
    try:
        return _gradient_support(module, spec, side, groups)
    except RuntimeError:
        return _perturbation_support(module, spec, side, groups)


def _perturbation_support(
    module: nn.Module, spec: ModelSpec, side: int, groups: list[list[int]]
) -> list[np.ndarray]:
    """For each group of diagonal positions, the input pixels whose output pixels change when
    the group's block of input is redrawn: the same reach as the gradient's, seen from the
    input side. Compared with the unchanged input in a batch of the same size, so that the
    kernels' batch-dependent rounding is not taken for a dependency."""
    s = spec.scale
    result = [np.zeros((side, side), dtype=bool) for _ in groups]
    with torch.no_grad():
        for seed in (0, 1):
            gen = torch.Generator().manual_seed(seed)
            x = torch.rand(1, spec.in_channels, side, side, generator=gen)
            for first in range(0, len(groups), PIXEL_BATCH):
                chunk = groups[first : first + PIXEL_BATCH]
                base = _forward(module, x.expand(len(chunk), -1, -1, -1).clone())
                changed = x.expand(len(chunk), -1, -1, -1).clone()
                for k, pixels in enumerate(chunk):
                    lo, hi = pixels[0], pixels[-1] + 1
                    block = torch.rand(spec.in_channels, hi - lo, hi - lo, generator=gen)
                    changed[k, :, lo:hi, lo:hi] = block
                y = _forward(module, changed)
                tolerance = 1e-6 * float(base.abs().max()) + 1e-12
                per_output: np.ndarray = (y - base).abs().amax(dim=1).numpy() > tolerance
                moved = np.any(per_output.reshape(len(chunk), side, s, side, s), axis=(2, 4))
                for k in range(len(chunk)):
                    result[first + k] |= moved[k]
    return result


def _gradient_support(
    module: nn.Module, spec: ModelSpec, side: int, groups: list[list[int]]
) -> list[np.ndarray]:
    """For each group of diagonal positions (input pixels), the input pixels their outputs
    depend on: one batch element per group, a non-zero input gradient of a positively
    weighted sum of the group's output pixels (no two gradients cancel). Two random inputs,
    so that a ReLU that happens to be off hides no pixel."""
    s = spec.scale
    result = [np.zeros((side, side), dtype=bool) for _ in groups]
    for seed in (0, 1):
        gen = torch.Generator().manual_seed(seed)
        for first in range(0, len(groups), PIXEL_BATCH):
            chunk = groups[first : first + PIXEL_BATCH]
            x = torch.rand(1, spec.in_channels, side, side, generator=gen)
            x = x.expand(len(chunk), -1, -1, -1).clone().requires_grad_(True)
            y = _forward(module, x)
            loss = y.new_zeros(())
            for k, pixels in enumerate(chunk):
                lo, hi = pixels[0] * s, (pixels[-1] + 1) * s
                weights = torch.rand(hi - lo, hi - lo, generator=gen) + 0.5
                loss = loss + (y[k, :, lo:hi, lo:hi] * weights).sum()
            loss.backward()
            assert x.grad is not None
            grads = (x.grad.abs().sum(dim=1) > 0).numpy()
            for k in range(len(chunk)):
                result[first + k] |= grads[k]
    return result


def _forward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)``, one element at a time for a network that takes a batch of one only."""
    if x.shape[0] > 1:
        try:
            return module(x)  # type: ignore[no-any-return]
        except RuntimeError:
            pass
    return torch.cat([module(x[i : i + 1]) for i in range(x.shape[0])])


@dataclass(frozen=True)
class TiledError:
    max_lsb: float  # the largest |tiled - whole| over the photos, in 8-bit steps
    tile: int
    overlap: int
    photos: int

    def to_dict(self) -> dict[str, float | int]:
        return {
            "max_lsb": self.max_lsb,
            "tile": self.tile,
            "overlap": self.overlap,
            "photos": self.photos,
        }


def tile_for_check(spec: ModelSpec, overlap: int) -> int:
    """A tile small enough that the verification photos are cut into several."""
    return round_up(max(64, 2 * overlap + 32), spec.pad_multiple)


def tiled_error(model_path: Path, spec: ModelSpec, photos: Sequence[np.ndarray]) -> TiledError:
    """Run the exported model through the runtime tiled and whole on each photo."""
    from edgegen.runtime.generator import Generator, TilingWarning

    whole = Generator(model_path, "cpu", spec=spec, tile=0, verify_manifest=False)
    tile = tile_for_check(spec, whole.overlap)
    tiled = Generator(model_path, "cpu", spec=spec, tile=tile, verify_manifest=False)
    worst = 0.0
    for photo in photos:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TilingWarning)  # measuring it is the point
            a, b = whole(photo), tiled(photo)
        worst = max(worst, float(np.abs(a.astype(np.float64) - b).max()) * 255.0)
    return TiledError(round(worst, 4), tile, whole.overlap, len(photos))
