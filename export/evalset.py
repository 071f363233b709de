"""The photos a quantization candidate is ranked and checked on, and its measure on them.

Two disjoint uses, so that a choice is never judged on the photos that made it:

- the *ranking* set: fixed crops of a few bundled training photos (never the held-out ones),
  with their own noise seeds; calibration settings, node sensitivities and groups are compared
  on it;
- the *held-out* set: the whole held-out photos (``BUNDLED_HELD_OUT``, or the ``--val`` folder),
  degraded as export's verification degrades them; every candidate is accepted or refused on it,
  and calibration and ranking never see it.

The reference is the fp32 ONNX model's output on the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.metrics import error_stats, psnr
from edgegen.runtime.spec import ModelSpec

from .onnx_export import INPUT_NAME, OUTPUT_NAME
from .target import Measure

# Colour training photos with varied content (skin and fabric, metal, texture, fundus, tissue).
# Calibration crops come from all training photos at other places and with other noise.
RANKING_PHOTOS = ("astronaut.png", "motorcycle_right.png", "retina.jpg", "ihc.png", "brick.png")
RANKING_CROP = 192
RANKING_SEED = 771  # differs from calibration's (0) and verification's (20240611)


@dataclass
class EvalSet:
    name: str
    inputs: list[np.ndarray]  # float32 NCHW (1, C, h, w)
    clean: list[np.ndarray]  # float32 NCHW at the output size
    reference: list[np.ndarray]  # the fp32 model's outputs
    photos: list[str]

    @property
    def fp32_gt_psnr(self) -> float:
        return _mean_gt_psnr(self.reference, self.clean)


def session(path: Path | str | bytes, threads: int | None = 2, spin: bool = True) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run_all(path: Path | str | bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    sess = session(path)
    return [np.asarray(sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]) for x in inputs]


def measure(path: Path | str | bytes, evalset: EvalSet) -> Measure:
    """The candidate at ``path`` on ``evalset``, against fp32 and the ground truth."""
    outputs = run_all(path, evalset.inputs)
    stats = error_stats(outputs, evalset.reference)
    return Measure(
        gt_psnr=_mean_gt_psnr(outputs, evalset.clean),
        fp32_gt_psnr=evalset.fp32_gt_psnr,
        psnr_vs_fp32=stats.psnr,
        max_lsb=stats.max_lsb,
        pct_over_1lsb=stats.pct_over_1lsb,
    )


def _mean_gt_psnr(outputs: list[np.ndarray], clean: list[np.ndarray]) -> float:
    # Clipped to [0, 1] first: that is what a saved image holds.
    return float(
        np.mean([psnr(c, np.clip(o, 0.0, 1.0)) for o, c in zip(outputs, clean, strict=True)])
    )


def held_out_set(spec: ModelSpec, fp32_path: Path, source: str = "bundled") -> EvalSet:
    """The whole held-out photos, degraded with verification's fixed seeds."""
    from .verify import make_samples

    samples = make_samples(spec, source, sizes=("full",))
    if any(s.clean is None for s in samples):
        raise EdgegenError("accuracy targets need the spec's degradation to make held-out inputs")
    inputs = [s.degraded for s in samples]
    clean = [s.clean for s in samples if s.clean is not None]
    return EvalSet("held-out", inputs, clean, run_all(fp32_path, inputs), [s.name for s in samples])


def ranking_set(spec: ModelSpec, fp32_path: Path) -> EvalSet:
    """Centre crops of :data:`RANKING_PHOTOS` (bundled training photos), degraded as in training."""
    from edgegen.runtime.degrade import degradation_from_spec
    from edgegen.train.data.images import bundled_dir, load_all

    if not spec.degradation:
        raise EdgegenError("accuracy targets need the spec's degradation to make ranking inputs")
    degrade = degradation_from_spec(spec.degradation)
    photos = load_all([bundled_dir() / n for n in RANKING_PHOTOS], spec.in_channels).photos
    s = spec.scale
    inputs, clean = [], []
    for i, photo in enumerate(photos):
        side = min(RANKING_CROP, photo.height, photo.width) // s * s
        top, left = (photo.height - side) // 2, (photo.width - side) // 2
        crop = np.ascontiguousarray(photo.as_float()[top : top + side, left : left + side])
        degraded = np.clip(degrade(crop, np.random.default_rng((RANKING_SEED, i))), 0.0, 1.0)
        inputs.append(_nchw(degraded))
        clean.append(_nchw(crop))
    return EvalSet("ranking", inputs, clean, run_all(fp32_path, inputs), [p.name for p in photos])


def _nchw(hwc: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(hwc.transpose(2, 0, 1)[None], dtype=np.float32)
