"""Training patches and the held-out validation samples.

A training sample is a pure function of ``(seed, index)``: the sampler hands out global indices
(step * global_batch + rank * per_rank + i), so the stream is identical with any number of
workers, sharded across DDP ranks without overlap, and resumes exactly where it stopped.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from edgegen.evaluation.degrade import Degradation
from edgegen.evaluation.photos import Photo
from edgegen.evaluation.samples import Sample, samples_from_photos


def to_chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


class PatchDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Random crops (with flips and 90° rotations) of the photos, degraded on the fly.

    ``patch`` is the clean (output) patch size; for super-resolution the input is ``patch/scale``.
    Each photo is equally likely, so one very large photo does not dominate the mix.
    """

    def __init__(
        self, photos: list[Photo], degradation: Degradation, patch: int, seed: int, scale: int = 1
    ) -> None:
        self.photos = [p for p in photos if p.height >= patch and p.width >= patch]
        if not self.photos:
            raise ValueError("no photo is as large as the patch")
        self.degradation = degradation
        self.patch = patch
        self.seed = seed
        self.scale = scale

    def __len__(self) -> int:
        return 2**62  # an endless stream; the sampler decides which indices are drawn

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng((self.seed, index))
        photo = self.photos[int(rng.integers(len(self.photos)))]
        p = self.patch
        top = int(rng.integers(photo.height - p + 1))
        left = int(rng.integers(photo.width - p + 1))
        crop = photo.pixels[top : top + p, left : left + p]
        scale = 65535.0 if crop.dtype == np.uint16 else 255.0
        clean = crop.astype(np.float32) / np.float32(scale)
        k = int(rng.integers(8))  # the 8 symmetries of the square
        clean = np.rot90(clean, k % 4)
        if k >= 4:
            clean = clean[:, ::-1]
        clean = np.ascontiguousarray(clean)
        degraded = self.degradation(clean, rng)
        return to_chw(degraded), to_chw(clean)


class StreamSampler(Sampler[int]):
    """Yields the global sample indices of one rank, from ``start_step`` on, forever."""

    def __init__(self, start_step: int, global_batch: int, rank: int = 0, world: int = 1) -> None:
        if global_batch % world:
            raise ValueError(f"batch {global_batch} is not divisible by {world} processes")
        self.start_step = start_step
        self.global_batch = global_batch
        self.per_rank = global_batch // world
        self.rank = rank

    def __iter__(self) -> Iterator[int]:
        step = self.start_step
        while True:
            base = step * self.global_batch + self.rank * self.per_rank
            yield from range(base, base + self.per_rank)
            step += 1


def val_samples(photos: list[Photo], degradation: Degradation, scale: int = 1) -> list[Sample]:
    """The whole held-out photos, degraded exactly as export's verification and ``edgegen
    compare`` degrade them (:mod:`edgegen.evaluation.samples`), so that every run, whatever its
    training seed, is measured on the same inputs, and its validation PSNR is the one the later
    tools report for the PyTorch model."""
    return samples_from_photos(photos, degradation, scale, ("full",))
