"""What tiling may assume about a network: its receptive field, measured, and the error that
tiles actually make against the whole image, measured on the verification photos.

The receptive field is read from the input gradient of one output pixel: the pixels it depends on
are those with a non-zero gradient. A field that reaches every edge of the largest probe input is
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


@dataclass(frozen=True)
class Field:
    receptive_field: int | None  # input pixels; None when global
    global_field: bool
    probe_side: int  # the probe input's side that decided


def measure_receptive_field(
    module: nn.Module, spec: ModelSpec, sides: Sequence[int] = PROBE_SIDES
) -> Field:
    """The width (input pixels) of the region one output pixel near the centre depends on."""
    module = module.eval().float()
    pm = spec.pad_multiple
    side = 0
    for side in (round_up(s, pm) for s in sides):
        support = np.zeros((side, side), dtype=bool)
        for seed in (0, 1):  # a second input: a ReLU that happens to be off hides no pixel
            gen = torch.Generator().manual_seed(seed)
            x = torch.rand(1, spec.in_channels, side, side, generator=gen).requires_grad_(True)
            y = module(x)
            centre = side * spec.scale // 2
            y[0, :, centre, centre].sum().backward()
            assert x.grad is not None
            support |= (x.grad[0].abs().sum(dim=0) > 0).numpy()
        rows, cols = np.flatnonzero(support.any(axis=1)), np.flatnonzero(support.any(axis=0))
        if rows.size == 0:  # the output ignores its input: nothing to overlap
            return Field(1, False, side)
        top, bottom, left, right = rows[0], rows[-1], cols[0], cols[-1]
        if not (top == 0 and left == 0 and bottom == side - 1 and right == side - 1):
            return Field(int(max(bottom - top, right - left)) + 1, False, side)
    return Field(None, True, side)


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
