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


def starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile start positions covering ``length``; the last tile ends at the end."""
    if length <= tile:
        return [0]
    step = tile - overlap
    out = list(range(0, length - tile, step))
    out.append(length - tile)
    return out


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
    length: int, tile: int, overlap: int, margin: int, scale: int
) -> list[tuple[int, int, np.ndarray]]:
    """(output start, output size, normalised weights) for each tile along one axis."""
    positions = starts(length, tile, overlap)
    size = min(tile, length) * scale
    windows = []
    total = np.zeros(length * scale, dtype=np.float64)
    for k, s in enumerate(positions):
        w = _window(size, overlap * scale, margin * scale, k > 0, k < len(positions) - 1)
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
) -> np.ndarray:
    """Run ``infer`` (HWC crop in, float32 HWC out, ``scale`` times larger) over tiles of
    ``image`` and blend; returns the float32 HWC output."""
    if overlap < 0 or tile <= overlap:
        raise EdgegenError(f"tile ({tile}) must be larger than the overlap ({overlap})")
    h, w = image.shape[:2]
    rows = axis_weights(h, tile, overlap, margin, scale)
    cols = axis_weights(w, tile, overlap, margin, scale)
    out = np.zeros((h * scale, w * scale, out_channels), dtype=np.float32)
    for oy, ny, wy in rows:
        for ox, nx, wx in cols:
            crop = image[oy // scale : (oy + ny) // scale, ox // scale : (ox + nx) // scale]
            result = infer(crop)
            out[oy : oy + ny, ox : ox + nx] += result * (wy[:, None, None] * wx[None, :, None])
    return out
