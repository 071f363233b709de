"""Data: photo sources, degradations and the patch stream."""

from edgegen.runtime.degrade import (
    BicubicDownscale,
    Degradation,
    GaussianNoise,
    JpegCompression,
    degradation_from_spec,
    make_degradation,
)

from .dataset import PatchDataset, StreamSampler, ValPair, make_val_pairs
from .images import BUNDLED_HELD_OUT, BUNDLED_TRAIN, Photo, find_images, load_all, load_photo

__all__ = [
    "BUNDLED_HELD_OUT",
    "BUNDLED_TRAIN",
    "BicubicDownscale",
    "Degradation",
    "GaussianNoise",
    "JpegCompression",
    "PatchDataset",
    "Photo",
    "StreamSampler",
    "ValPair",
    "degradation_from_spec",
    "find_images",
    "load_all",
    "load_photo",
    "make_degradation",
    "make_val_pairs",
]
