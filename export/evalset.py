"""The photos a quantization candidate is ranked and checked on, and its measure on them.

Two disjoint uses, so that a choice is never judged on the photos that made it:

- the *ranking* set: fixed crops of a few bundled training photos (never the held-out ones),
  with their own noise seeds; calibration settings, node sensitivities and groups are compared
  on it;
- the *held-out* set: the whole held-out photos (``BUNDLED_HELD_OUT``, or the ``--val`` folder),
  degraded as export's verification degrades them; every candidate is accepted or refused on it,
  and calibration and ranking never see it.

The reference is the fp32 ONNX model's output on the same inputs. Every model runs through a
runner (onnxruntime's CPU provider, 2 threads) and is measured as an image: back to [0, 1],
clipped, as a saved image holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgegen.evaluation.degrade import degradation_from_spec
from edgegen.evaluation.photos import bundled_dir, load_all
from edgegen.evaluation.samples import Sample, make_samples
from edgegen.runners import onnx_runner
from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.metrics import error_stats, psnr
from edgegen.runtime.model_io import padded_input, to_image
from edgegen.runtime.spec import ModelSpec

from .target import Measure

# Colour training photos with varied content (skin and fabric, metal, texture, fundus, tissue).
# Calibration crops come from all training photos at other places and with other noise.
RANKING_PHOTOS = ("astronaut.png", "motorcycle_right.png", "retina.jpg", "ihc.png", "brick.png")
RANKING_CROP = 192
RANKING_SEED = 771  # differs from calibration's (0) and verification's (20240611)


MEASURE_THREADS = 2


@dataclass
class EvalSet:
    name: str
    inputs: list[np.ndarray]  # float32 NCHW (1, C, h, w), padded to the pad multiple
    clean: list[np.ndarray]  # float32 HWC at the output size
    reference: list[np.ndarray]  # the fp32 model's outputs, as images (HWC in [0, 1])
    photos: list[str]
    spec: ModelSpec

    @property
    def fp32_gt_psnr(self) -> float:
        return _mean_gt_psnr(self.reference, self.clean)

    def images(self, outputs: list[np.ndarray]) -> list[np.ndarray]:
        """Raw outputs as images (clipped, as a saved image holds them), cropped to the clean
        photos' size."""
        return [
            to_image(self.spec, y, c.shape[0], c.shape[1])
            for y, c in zip(outputs, self.clean, strict=True)
        ]


def run_all(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The model at ``path`` on every input, on onnxruntime's CPU provider."""
    runner = onnx_runner(path, "onnxruntime", "cpu", threads=MEASURE_THREADS)
    return [runner.infer(x) for x in inputs]


def measure(path: Path, evalset: EvalSet) -> Measure:
    """The candidate at ``path`` on ``evalset``, against fp32 and the ground truth."""
    outputs = evalset.images(run_all(path, evalset.inputs))
    stats = error_stats(outputs, evalset.reference)
    return Measure(
        gt_psnr=_mean_gt_psnr(outputs, evalset.clean),
        fp32_gt_psnr=evalset.fp32_gt_psnr,
        psnr_vs_fp32=stats.psnr,
        max_lsb=stats.max_lsb,
        pct_over_1lsb=stats.pct_over_1lsb,
    )


def _mean_gt_psnr(outputs: list[np.ndarray], clean: list[np.ndarray]) -> float:
    return float(np.mean([psnr(c, o) for o, c in zip(outputs, clean, strict=True)]))


def _evalset(name: str, spec: ModelSpec, fp32_path: Path, samples: list[Sample]) -> EvalSet:
    if any(s.clean is None for s in samples):
        raise EdgegenError(f"accuracy targets need the spec's degradation to make {name} inputs")
    inputs = [padded_input(spec, s.degraded) for s in samples]
    clean = [s.clean for s in samples if s.clean is not None]
    partial = EvalSet(name, inputs, clean, [], [s.photo for s in samples], spec)
    partial.reference = partial.images(run_all(fp32_path, inputs))
    return partial


def held_out_set(spec: ModelSpec, fp32_path: Path, source: str = "bundled") -> EvalSet:
    """The whole held-out photos, degraded as verification degrades them."""
    if not spec.degradation:
        raise EdgegenError("accuracy targets need the spec's degradation to make held-out inputs")
    samples = make_samples(spec, source, ("full",), option="--val")
    return _evalset("held-out", spec, fp32_path, samples)


def ranking_set(spec: ModelSpec, fp32_path: Path) -> EvalSet:
    """Centre crops of :data:`RANKING_PHOTOS` (bundled training photos), degraded as in training,
    with a seed of their own."""
    if not spec.degradation:
        raise EdgegenError("accuracy targets need the spec's degradation to make ranking inputs")
    degrade = degradation_from_spec(spec.degradation)
    photos = load_all([bundled_dir() / n for n in RANKING_PHOTOS], spec.in_channels).photos
    s = spec.scale
    samples = []
    for i, photo in enumerate(photos):
        side = min(RANKING_CROP, photo.height, photo.width) // s * s
        top, left = (photo.height - side) // 2, (photo.width - side) // 2
        crop = np.ascontiguousarray(photo.as_float()[top : top + side, left : left + side])
        degraded = np.clip(degrade(crop, np.random.default_rng((RANKING_SEED, i))), 0.0, 1.0)
        samples.append(Sample(photo.name, f"{side}x{side}", degraded.astype(np.float32), crop))
    return _evalset("ranking", spec, fp32_path, samples)
