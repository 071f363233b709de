"""Held-out samples: degraded photos with their clean ground truth, made one way everywhere.

Training's validation, export's verification, golden samples and ``edgegen compare`` all measure
a model on these: a centre crop of each photo at each size (of the model's input; ``"full"`` is
the whole photo), degraded as the spec says with a generator seeded by :data:`SEED`, the photo
and the size. So the same photo at the same size is the same input in every tool: the PSNR that
training reports for the whole held-out photos is the reference's in ``edgegen compare``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.spec import ModelSpec

from .degrade import Degradation, degradation_from_spec
from .photos import Photo, held_out_photos

Size = tuple[int, int] | str  # (height, width) of the model's input, or "full"
SEED = 20240611  # the held-out samples' seed, for every tool
# Export's verification sizes: 37x53 is odd on purpose; none equals the 64x64 trace size.
VERIFY_SIZES: tuple[Size, ...] = ((37, 53), (96, 128), (131, 77), "full")


@dataclass
class Sample:
    photo: str
    size: str  # "HxW" of the model's input as asked for, or "full"
    degraded: np.ndarray  # float32 HWC in [0, 1], the model's input
    clean: np.ndarray | None  # float32 HWC in [0, 1] at the output size; None: no ground truth


def size_label(size: Size) -> str:
    return size if isinstance(size, str) else f"{size[0]}x{size[1]}"


def parse_sizes(text: str) -> list[Size]:
    """``"256,37x53,full"`` -> ``[(256, 256), (37, 53), "full"]`` (height x width)."""
    sizes: list[Size] = []
    for item in (t.strip().lower() for t in text.split(",")):
        if not item:
            continue
        if item == "full":
            sizes.append("full")
            continue
        parts = item.split("x")
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            raise EdgegenError(f"bad size {item!r}: use N, HxW or full") from None
        if len(nums) not in (1, 2) or min(nums) < 1:
            raise EdgegenError(f"bad size {item!r}: use N, HxW or full")
        sizes.append((nums[0], nums[-1]))
    if not sizes:
        raise EdgegenError("--sizes is empty")
    return sizes


def sample_rng(photo_index: int, size: Size) -> np.random.Generator:
    """The degradation's random generator for one photo at one size (the size as asked for,
    so that a photo's sample does not depend on which other sizes are made)."""
    h, w = (0, 0) if isinstance(size, str) else size
    return np.random.default_rng((SEED, photo_index, h, w))


def samples_from_photos(
    photos: Sequence[Photo],
    degrade: Degradation | None,
    scale: int = 1,
    sizes: Sequence[Size] = ("full",),
) -> list[Sample]:
    """Degraded centre crops of each photo at each size; ``degrade`` None: the clean crop is
    the input and there is no ground truth."""
    samples = []
    for i, photo in enumerate(photos):
        if photo.height < scale or photo.width < scale:
            raise EdgegenError(
                f"image {photo.name} ({photo.height}x{photo.width}) is too small for scale {scale}"
            )
        clean_full = photo.as_float()
        for size in sizes:
            if size == "full":
                h, w = photo.height // scale, photo.width // scale
            else:
                assert isinstance(size, tuple)
                h, w = min(size[0], photo.height // scale), min(size[1], photo.width // scale)
            top, left = (photo.height - h * scale) // 2, (photo.width - w * scale) // 2
            clean = np.ascontiguousarray(clean_full[top : top + h * scale, left : left + w * scale])
            if degrade is None:
                samples.append(Sample(photo.name, size_label(size), clean, None))
                continue
            degraded = np.asarray(degrade(clean, sample_rng(i, size)), dtype=np.float32)
            samples.append(Sample(photo.name, size_label(size), degraded, clean))
    return samples


def make_samples(
    spec: ModelSpec,
    source: str = "bundled",
    sizes: Sequence[Size] = ("full",),
    option: str = "--images",
    ground_truth: bool = True,
) -> list[Sample]:
    """The held-out samples of ``source`` (see :func:`~edgegen.evaluation.photos.held_out_photos`)
    for a model of ``spec``; ``ground_truth``: the spec must name its degradation."""
    if ground_truth and not spec.degradation:
        raise EdgegenError("the model's spec names no degradation: no ground truth to make")
    degrade = degradation_from_spec(spec.degradation) if spec.degradation else None
    photos = held_out_photos(source, spec.in_channels, option)
    return samples_from_photos(photos, degrade, spec.scale, sizes)
