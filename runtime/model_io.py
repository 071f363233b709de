"""Between images and a model's tensors, as its spec says: one definition for every caller.

The Generator, comparisons, export's verification and the golden check all feed models and read
them the same way: float32 images in [0, 1] (HWC, RGB or gray) become NCHW batches in the
model's value range and colour order, padded (reflect) to its pad multiple; outputs come back to
[0, 1] and RGB. Pure numpy.
"""

from __future__ import annotations

import numpy as np

from .spec import ModelSpec

# Full-range integer pixels, and the factor that brings each kind to [0, 1].
UNIT_SCALE = {np.dtype(np.uint8): 1 / 255, np.dtype(np.uint16): 1 / 65535}


def to_unit(pixels: np.ndarray) -> np.ndarray:
    """Pixels as float32 in [0, 1]: uint8 and uint16 scaled from their full range, floats as
    they are (not copied when already float32)."""
    scale = UNIT_SCALE.get(pixels.dtype)
    if scale is None:
        return pixels.astype(np.float32, copy=False)
    return pixels.astype(np.float32) * np.float32(scale)


def to_model(spec: ModelSpec, image: np.ndarray) -> np.ndarray:
    """float32 HWC in [0, 1] with the model's channels -> NCHW ``(1, C, H, W)`` float32 in the
    model's value range and colour order (not padded)."""
    x = image[:, :, ::-1] if spec.color_order == "BGR" else image
    lo, hi = spec.value_range
    if (lo, hi) != (0.0, 1.0):
        x = x * np.float32(hi - lo) + np.float32(lo)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def from_model(spec: ModelSpec, batch: np.ndarray) -> np.ndarray:
    """NCHW model output -> NHWC float32 in [0, 1] units, RGB (not clipped)."""
    y = np.asarray(batch, dtype=np.float32)
    lo, hi = spec.value_range
    if (lo, hi) != (0.0, 1.0):
        y = (y - np.float32(lo)) / np.float32(hi - lo)
    y = y.transpose(0, 2, 3, 1)
    if spec.color_order == "BGR":
        y = y[:, :, :, ::-1]
    return y


def to_image(spec: ModelSpec, batch: np.ndarray, height: int, width: int) -> np.ndarray:
    """The first output of a batch as an image: float32 HWC in [0, 1] (clipped, as a saved image
    holds it), RGB, cropped to ``height`` x ``width``."""
    y = from_model(spec, batch)[0, :height, :width]
    return np.ascontiguousarray(np.clip(y, 0.0, 1.0), dtype=np.float32)


def pad_to_multiple(batch: np.ndarray, multiple: int) -> np.ndarray:
    """NCHW padded at the bottom and right to a multiple of ``multiple`` (reflect; edge where
    the image is too small to reflect)."""
    h, w = batch.shape[2:]
    ph, pw = -h % multiple, -w % multiple
    if not (ph or pw):
        return batch
    widths = ((0, 0), (0, 0), (0, int(ph)), (0, int(pw)))
    if ph < h and pw < w:
        return np.asarray(np.pad(batch, widths, mode="reflect"))
    return np.asarray(np.pad(batch, widths, mode="edge"))


def padded_input(spec: ModelSpec, image: np.ndarray) -> np.ndarray:
    """:func:`to_model`, then padded to the spec's pad multiple: ready for ``infer``."""
    return pad_to_multiple(to_model(spec, image), spec.pad_multiple)


def output_shape(spec: ModelSpec, batch_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The NCHW output shape the spec promises for an NCHW input of ``batch_shape``."""
    n, _, h, w = batch_shape
    return (n, spec.out_channels, h * spec.scale, w * spec.scale)
