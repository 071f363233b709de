"""Verification of an ONNX artifact against the PyTorch model on held-out photos.

Both run, through their runners, on the same degraded crops at several sizes (an odd one, ones
the export never saw, and the whole photos: :data:`~edgegen.evaluation.samples.VERIFY_SIZES`),
and the outputs are compared as ``edgegen compare`` compares them
(:func:`~edgegen.evaluation.compare.compare_outputs`): the max error in 8-bit steps (LSB), the
share of pixels off by more than 1 LSB, PSNR against the torch output, and PSNR/SSIM against the
clean ground truth next to the torch model's own. The same samples become the golden samples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.evaluation.compare import SizeRow, compare_outputs, ssim_function
from edgegen.evaluation.samples import VERIFY_SIZES, Sample, Size, make_samples
from edgegen.runners import Runner, onnx_runner
from edgegen.runners.pytorch import TorchRunner
from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.golden import Tolerance, write_golden
from edgegen.runtime.metrics import ErrorStats, Verdict, limit_failures
from edgegen.runtime.model_io import padded_input, to_image
from edgegen.runtime.spec import ModelSpec

# Defaults, per precision. fp32: 1e-4 on [0, 1] (0.0255 LSB), float rounding only. fp16: 60 dB
# against torch (an 11-bit mantissa gives ~65-70 dB on these nets). int8: a quarter dB of
# quality, the accuracy budget of static QDQ quantization on a denoiser.
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_lsb=0.0255),
    "fp16": Tolerance(min_psnr_vs_torch=60.0, max_gt_psnr_drop=0.05),
    # 35 dB against torch is what a device can check without ground truth (golden samples);
    # static int8 on these nets gives 44-50 dB.
    "int8": Tolerance(min_psnr_vs_torch=35.0, max_gt_psnr_drop=0.25),
}
# Golden samples: the first two crops of each size, one of them odd (37x53).
GOLDEN_SIZES = ("37x53", "96x128")
GOLDEN_PER_SIZE = 2


def tolerance_for(precision: str, overrides: dict[str, float] | None = None) -> Tolerance:
    base = DEFAULT_TOLERANCES[precision]
    if not overrides:
        return base
    names = {f.name for f in dataclasses.fields(Tolerance)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise EdgegenError(
            f"unknown tolerance {', '.join(unknown)} for {precision}; "
            f"use {', '.join(sorted(names))}"
        )
    return dataclasses.replace(base, **overrides)


@dataclass
class Row:
    size: str
    images: int
    max_lsb: float
    pct_over_1lsb: float
    psnr_vs_torch: float
    gt_psnr: float | None = None
    gt_ssim: float | None = None
    torch_gt_psnr: float | None = None
    torch_gt_ssim: float | None = None

    @property
    def gt_psnr_drop(self) -> float | None:
        if self.gt_psnr is None or self.torch_gt_psnr is None:
            return None
        return self.torch_gt_psnr - self.gt_psnr

    @classmethod
    def of(cls, row: SizeRow) -> Row:
        """The comparison's row, as verification names it (torch is the reference)."""
        return cls(
            row.size,
            row.images,
            row.max_lsb,
            row.pct_over_1lsb,
            row.psnr_vs_ref,
            row.gt_psnr,
            row.gt_ssim,
            row.ref_gt_psnr,
            row.ref_gt_ssim,
        )


@dataclass
class Report(Verdict):
    precision: str
    tolerance: Tolerance
    rows: list[Row] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    non_finite: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "tolerance": self.tolerance.to_dict(),
            "failures": self.failures,
            "rows": [dict(dataclasses.asdict(r), gt_psnr_drop=r.gt_psnr_drop) for r in self.rows],
        }

    def table(self) -> str:
        lines = [
            f"{'size':>9} {'imgs':>4} {'max LSB':>8} {'>1LSB %':>8} {'PSNR/torch':>10} "
            f"{'GT PSNR':>8} {'torch':>7} {'GT SSIM':>8} {'torch':>7}"
        ]
        for r in self.rows:

            def f(v: float | None, fmt: str) -> str:
                return format(v, fmt) if v is not None else "-"

            lines.append(
                f"{r.size:>9} {r.images:>4} {r.max_lsb:8.4f} {r.pct_over_1lsb:8.4f} "
                f"{r.psnr_vs_torch:10.2f} {f(r.gt_psnr, '8.2f')} {f(r.torch_gt_psnr, '7.2f')} "
                f"{f(r.gt_ssim, '8.4f')} {f(r.torch_gt_ssim, '7.4f')}"
            )
        return "\n".join(lines)


@dataclass
class References:
    """The held-out samples and the PyTorch model's raw outputs on them: what every artifact
    of one export is verified against, and what its golden samples hold."""

    spec: ModelSpec
    samples: list[Sample]
    inputs: list[np.ndarray]  # NCHW, padded: what every runner is given
    outputs: list[np.ndarray]  # the torch model's raw NCHW outputs

    def images(self, outputs: Sequence[np.ndarray], indices: Sequence[int]) -> list[np.ndarray]:
        """Raw outputs on the samples at ``indices`` as the images a person sees (in [0, 1],
        clipped), cropped to each sample's size."""
        s = self.spec.scale
        images = []
        for y, k in zip(outputs, indices, strict=True):
            h, w = self.samples[k].degraded.shape[:2]
            images.append(to_image(self.spec, y, h * s, w * s))
        return images


def torch_references(
    module: Any, spec: ModelSpec, source: str = "bundled", sizes: Sequence[Size] = VERIFY_SIZES
) -> References:
    """The held-out samples of ``source`` and the module's outputs on them."""
    samples = make_samples(spec, source, sizes, option="--val", ground_truth=False)
    if not samples:
        raise EdgegenError(f"no readable verification photos in {source}")
    inputs = [padded_input(spec, s.degraded) for s in samples]
    runner = TorchRunner(module, spec)
    return References(spec, samples, inputs, [runner.infer(x) for x in inputs])


def verify(artifact: Path, precision: str, refs: References, tolerance: Tolerance) -> Report:
    """Run ``artifact`` on onnxruntime's CPU provider and compare it with the torch outputs."""
    return verify_runner(onnx_runner(artifact, "onnxruntime", "cpu"), precision, refs, tolerance)


def verify_runner(runner: Runner, precision: str, refs: References, tolerance: Tolerance) -> Report:
    report = Report(precision, tolerance)
    kept: list[int] = []
    outputs: list[np.ndarray] = []
    path = getattr(runner, "path", None)
    for k, (sample, x, ref) in enumerate(zip(refs.samples, refs.inputs, refs.outputs, strict=True)):
        try:
            out = runner.infer(x)
        except EdgegenError as exc:  # a graph that cannot run at this size: a failed artifact
            reason = str(exc).replace(str(path), f"model.{precision}.onnx") if path else str(exc)
            report.failures.append(f"{precision} at {sample.size} ({sample.photo}): {reason}")
            continue
        if out.shape != ref.shape:
            report.failures.append(
                f"{precision} at {sample.size} ({sample.photo}): output shape {out.shape}, "
                f"torch {ref.shape}"
            )
        elif not np.isfinite(out).all():
            report.non_finite.append(f"{sample.photo} {sample.size}")
        else:
            kept.append(k)
            outputs.append(out)
    if report.non_finite:
        overflow = " (fp16's range overflows)" if precision == "fp16" else ""
        report.failures.append(
            f"{precision}: inf/NaN in the output{overflow} for " + ", ".join(report.non_finite)
        )
    samples = [refs.samples[k] for k in kept]
    torch_images = refs.images([refs.outputs[k] for k in kept], kept)
    images = refs.images(outputs, kept)
    for row in compare_outputs(samples, torch_images, images, ssim_function()):
        report.rows.append(Row.of(row))
        _check(report, report.rows[-1], tolerance)
    return report


def _check(report: Report, row: Row, tol: Tolerance) -> None:
    where = f"{report.precision} at {row.size}"
    stats = ErrorStats(row.max_lsb, row.pct_over_1lsb, row.psnr_vs_torch)
    report.failures += limit_failures(
        where, stats, tol.max_lsb, tol.max_pct_over_1lsb, tol.min_psnr_vs_torch
    )
    drop = row.gt_psnr_drop
    if tol.max_gt_psnr_drop is not None and drop is not None and drop > tol.max_gt_psnr_drop:
        report.failures.append(
            f"{where}: PSNR vs ground truth {drop:.3f} dB below torch's > {tol.max_gt_psnr_drop} dB"
        )


def golden(path: Path, precision: str, refs: References, tolerance: Tolerance) -> None:
    """Golden samples: a few degraded crops at two sizes (one odd), with torch's outputs and the
    precision's tolerance, so the runtime can verify the model on any device without torch."""
    chosen = [
        k
        for size in GOLDEN_SIZES
        for k in [i for i, s in enumerate(refs.samples) if s.size == size][:GOLDEN_PER_SIZE]
    ]
    write_golden(
        path,
        precision,
        [refs.inputs[k] for k in chosen],
        [refs.outputs[k] for k in chosen],
        [{"photo": refs.samples[k].photo, "size": refs.samples[k].size} for k in chosen],
        tolerance,
    )
