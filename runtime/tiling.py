"""Tiled inference: large images in overlapping tiles, blended without seams, in bounded memory.

Tiles overlap by ``overlap`` input pixels. Each tile's weight along an axis is 1 in its body and,
at an edge shared with a neighbour, 0 for the first ``margin`` pixels (where the tile's own zero
padding makes its output differ from the whole image's: half the receptive field) and then a
linear ramp up to 1 across the rest of the overlap. The windows are separable and the tile grid is
a product grid, so the per-axis weights are normalised to sum to 1 in advance and every tile is
added straight into the output: memory is the output image plus one tile.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import EdgegenError

AUTO_TILE_PIXELS = 1024 * 1024  # tile=None tiles only images with more pixels than this
AUTO_TILE = 512
MIN_OVERLAP = 16


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def default_overlap(receptive_field: int | None, pad_multiple: int = 1) -> int:
    """max(16, receptive field) input pixels, rounded up to the pad multiple."""
    return round_up(max(MIN_OVERLAP, receptive_field or 0), pad_multiple)


def default_margin(receptive_field: int | None, overlap: int) -> int:
    """Pixels at a shared tile edge that get no weight: half the receptive field."""
    half = receptive_field // 2 if receptive_field else overlap // 4
    return max(0, min(half, (overlap - 1) // 2))


def starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Tile start positions covering ``length``, each a multiple of ``align`` (the model's pad
    multiple: a network that works in blocks of 4 computes differently on a crop shifted by 3).
    ``tile`` and ``overlap`` are multiples of ``align``; the last tile starts at the last aligned
    position that leaves at most ``tile`` pixels, so it may be shorter or up to ``align - 1``
    pixels longer than the others (:func:`tile_spans`)."""
    if length <= tile:
        return [0]
    step = tile - overlap
    last = (length - tile) // align * align
    out = list(range(0, last, step))
    out.append(last)
    return out


def tile_spans(length: int, tile: int, overlap: int, align: int = 1) -> list[tuple[int, int]]:
    """(start, size) of each tile along an axis: tiles of ``tile`` pixels, the last one to the
    end of the axis."""
    positions = starts(length, tile, overlap, align)
    spans = [(s, min(tile, length - s)) for s in positions[:-1]]
    spans.append((positions[-1], length - positions[-1]))
    return spans


def _window(size: int, ramp: int, margin: int, left: bool, right: bool) -> np.ndarray:
    """Weights along one axis of one tile: ramps only at the edges shared with a neighbour."""
    w = np.ones(size, dtype=np.float64)
    i = np.arange(size, dtype=np.float64)
    width = max(ramp - 2 * margin, 1)
    if left:
        w = np.minimum(w, np.clip((i - margin + 0.5) / width, 0.0, 1.0))
    if right:
        w = np.minimum(w, np.clip((size - 1 - i - margin + 0.5) / width, 0.0, 1.0))
    return w


def axis_weights(
    length: int, tile: int, overlap: int, margin: int, scale: int, align: int = 1
) -> list[tuple[int, int, np.ndarray]]:
    """(output start, output size, normalised weights) for each tile along one axis."""
    spans = tile_spans(length, tile, overlap, align)
    windows = []
    total = np.zeros(length * scale, dtype=np.float64)
    for k, (s, n) in enumerate(spans):
        size = n * scale
        # The last tile may overlap its neighbour by more than ``overlap`` (its start is
        # aligned down); its ramp stays ``overlap`` wide, and the weights are normalised below.
        w = _window(size, overlap * scale, margin * scale, k > 0, k < len(spans) - 1)
        windows.append((s * scale, size, w))
        total[s * scale : s * scale + size] += w
    if (total <= 0).any():  # pragma: no cover - overlap > 2 * margin guarantees coverage
        raise EdgegenError("tiling left pixels without weight; increase the overlap")
    return [(o, n, (w / total[o : o + n]).astype(np.float32)) for o, n, w in windows]


def run_tiled(
    image: np.ndarray,
    infer: Callable[[np.ndarray], np.ndarray],
    out_channels: int,
    scale: int,
    tile: int,
    overlap: int,
    margin: int,
    align: int = 1,
) -> np.ndarray:
    """Run ``infer`` (HWC crop in, float32 HWC out, ``scale`` times larger) over tiles of
    ``image`` and blend; returns the float32 HWC output. Tile starts are multiples of
    ``align``; ``tile`` and ``overlap`` are rounded up to it."""
    tile, overlap = round_up(tile, align), round_up(overlap, align)
    if overlap < 0 or tile <= overlap:
        raise EdgegenError(f"tile ({tile}) must be larger than the overlap ({overlap})")
    h, w = image.shape[:2]
    rows = axis_weights(h, tile, overlap, margin, scale, align)
    cols = axis_weights(w, tile, overlap, margin, scale, align)
    out = np.zeros((h * scale, w * scale, out_channels), dtype=np.float32)
    for oy, ny, wy in rows:
        for ox, nx, wx in cols:
            crop = image[oy // scale : (oy + ny) // scale, ox // scale : (ox + nx) // scale]
            result = infer(crop)
            out[oy : oy + ny, ox : ox + nx] += result * (wy[:, None, None] * wx[None, :, None])
    return out
