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
        self,
        photos: list[Photo],
        degradation: Degradation,
        patch: int,
        seed: int,
        scale: int = 1,
        augment: tuple[str, ...] = ("flips",),
    ) -> None:
        self.photos = [p for p in photos if p.height >= patch and p.width >= patch]
        if not self.photos:
            raise ValueError("no photo is as large as the patch")
        self.degradation = degradation
        self.patch = patch
        self.seed = seed
        self.scale = scale
        self.augment = frozenset(augment)

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
        clean = augment_patch(clean, rng, self.augment)
        degraded = self.degradation(clean, rng)
        return to_chw(degraded), to_chw(clean)


# Photometric augmentations: how often each is drawn, and its range.
GAMMA_P, GAMMA_RANGE, EXPOSURE_RANGE = 0.5, (0.5, 2.0), (0.6, 1.6)
DARK_P, DARK_RANGE = 0.2, (0.04, 0.3)
BRIGHT_P, BRIGHT_RANGE = 0.2, (0.04, 0.3)


def augment_patch(
    clean: np.ndarray, rng: np.random.Generator, augment: frozenset[str]
) -> np.ndarray:
    """A clean HWC float patch changed in ways a denoiser's output must follow (the degradation
    is drawn afterwards, on the changed patch, so noise statistics stay the file's):

    - flips: one of the square's 8 symmetries;
    - channels: the RGB channels in a random order, so that no colour is the default one and a
      bias in one channel cannot be learned from the photos' colour balance;
    - gamma: a gamma in [0.5, 2] and an exposure gain in [0.6, 1.6], clipped at 1: highlights
      that saturate, shadows that crush, as real exposures do;
    - dark: the patch scaled into [0.04, 0.3] of its range, a dim scene, where clipping at 0
      skews the noise and a colour shift shows first;
    - bright: dark's mirror, the patch's distance from white scaled by [0.04, 0.3] (a high-key
      scene: snow, an overcast sky, paper), where clipping at 1 skews the noise the other way.
      Pixels already white stay white, so it adds near-white content without adding the
      saturated pixels that ``gamma`` adds; a patch made dark is not also made bright.

    The draws always happen in the same order, whatever is enabled, so one seed's crops do not
    depend on the augmentations chosen. ``bright`` draws from a child generator (``spawn`` leaves
    the parent's stream as it was), so enabling it changes no other draw, the noise included.
    """
    k = int(rng.integers(8))  # the 8 symmetries of the square
    perm = rng.permutation(3)
    gamma_on = rng.random() < GAMMA_P
    gamma = float(np.exp(rng.uniform(np.log(GAMMA_RANGE[0]), np.log(GAMMA_RANGE[1]))))
    gain = float(rng.uniform(*EXPOSURE_RANGE))
    dark_on = rng.random() < DARK_P
    dark = float(rng.uniform(*DARK_RANGE))
    if "flips" in augment:
        clean = np.rot90(clean, k % 4)
        if k >= 4:
            clean = clean[:, ::-1]
    if "channels" in augment and clean.shape[2] == 3:
        clean = clean[..., perm]
    if "gamma" in augment and gamma_on:
        clean = np.minimum(np.power(clean, np.float32(gamma)) * np.float32(gain), np.float32(1))
    if "dark" in augment and dark_on:
        clean = clean * np.float32(dark)
    elif "bright" in augment:
        child = rng.spawn(1)[0]
        if child.random() < BRIGHT_P:
            keep = np.float32(child.uniform(*BRIGHT_RANGE))
            clean = np.float32(1) - (np.float32(1) - clean) * keep
    return np.ascontiguousarray(clean, dtype=np.float32)


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
