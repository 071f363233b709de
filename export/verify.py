"""Verification of an ONNX artifact against the PyTorch model on held-out photos.

Runs both on the same degraded crops at several sizes (an odd one, ones the export never saw,
and the whole photos), and reports what a person would see: the max error in 8-bit steps (LSB),
the share of pixels off by more than 1 LSB, PSNR against the torch output, and PSNR/SSIM against
the clean ground truth next to the torch model's own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.metrics import ErrorStats, Verdict, error_stats, limit_failures, psnr
from edgegen.runtime.spec import ModelSpec

from .onnx_export import INPUT_NAME, OUTPUT_NAME

# Crop sizes (height, width) of the model's input; "full" is each whole photo. 37x53 is odd on
# purpose; none equals the 64x64 trace size.
VERIFY_SIZES: tuple[tuple[int, int] | str, ...] = ((37, 53), (96, 128), (131, 77), "full")


@dataclass
class Tolerance:
    """Limits an artifact must meet against the torch model; None means not checked.

    max_lsb: largest absolute difference from torch, in 8-bit steps (1 LSB = 1/255).
    max_pct_over_1lsb: the share of output values (in %) that differ by more than 1 LSB.
    min_psnr_vs_torch: PSNR of the artifact's output against torch's, in dB.
    max_gt_psnr_drop: how much lower its PSNR against the clean ground truth may be than torch's.
    """

    max_lsb: float | None = None
    max_pct_over_1lsb: float | None = None
    min_psnr_vs_torch: float | None = None
    max_gt_psnr_drop: float | None = None


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
class Sample:
    name: str
    size: str
    degraded: np.ndarray  # float32 NCHW (1, C, h, w)
    clean: np.ndarray | None  # float32 NCHW at the output size; None if no degradation known


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
            "tolerance": dataclasses.asdict(self.tolerance),
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


def make_samples(
    spec: ModelSpec,
    source: str = "bundled",
    sizes: tuple[tuple[int, int] | str, ...] = VERIFY_SIZES,
) -> list[Sample]:
    """Degraded held-out crops at each size (center crops), with fixed seeds."""
    from edgegen.train.data import degradation_from_spec, find_images, load_all
    from edgegen.train.data.images import bundled_paths

    paths = bundled_paths("val") if source == "bundled" else find_images(Path(source))
    photos = load_all(paths, spec.in_channels).photos
    if not photos:
        raise EdgegenError(f"no readable verification photos in {source}")
    degrade = degradation_from_spec(spec.degradation) if spec.degradation else None
    s = spec.scale
    samples = []
    for i, photo in enumerate(photos):
        clean_full = photo.as_float()
        for j, size in enumerate(sizes):
            if size == "full":
                h, w = photo.height // s, photo.width // s
                label = "full"
            else:
                assert isinstance(size, tuple)
                h, w = min(size[0], photo.height // s), min(size[1], photo.width // s)
                label = f"{size[0]}x{size[1]}"
            top = (photo.height - h * s) // 2
            left = (photo.width - w * s) // 2
            clean = np.ascontiguousarray(clean_full[top : top + h * s, left : left + w * s])
            rng = np.random.default_rng((20240611, i, j))
            degraded = degrade(clean, rng) if degrade is not None else clean
            samples.append(
                Sample(
                    photo.name,
                    label,
                    _nchw(degraded),
                    _nchw(clean) if degrade is not None else None,
                )
            )
    return samples


def _nchw(hwc: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(hwc.transpose(2, 0, 1)[None].astype(np.float32))


def _hwc(nchw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(nchw[0].transpose(1, 2, 0))


@torch.no_grad()
def torch_outputs(module: nn.Module, samples: list[Sample]) -> list[np.ndarray]:
    module = module.eval().float().cpu()
    return [module(torch.from_numpy(s.degraded)).numpy() for s in samples]


def open_session(path: Path | str, threads: int | None = None) -> Any:
    """An onnxruntime CPU session, or one line saying why the file cannot be run."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgegenError(
            f"onnxruntime {ort.__version__} cannot load {Path(path).name}: {first}"
        ) from None


def verify(
    artifact: Path,
    precision: str,
    samples: list[Sample],
    references: list[np.ndarray],
    tolerance: Tolerance,
) -> Report:
    """Run ``artifact`` on every sample and compare with the torch ``references``."""
    from skimage.metrics import structural_similarity

    session = open_session(artifact)
    report = Report(precision, tolerance)
    by_size: dict[str, list[tuple[Sample, np.ndarray, np.ndarray]]] = {}
    for sample, ref in zip(samples, references, strict=True):
        out = np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: sample.degraded})[0])
        if out.shape != ref.shape:
            report.failures.append(
                f"{sample.name} {sample.size}: output shape {out.shape}, torch {ref.shape}"
            )
            continue
        if not np.isfinite(out).all():
            report.non_finite.append(f"{sample.name} {sample.size}")
            continue
        by_size.setdefault(sample.size, []).append((sample, out, ref))
    if report.non_finite:
        report.failures.append("inf/NaN in the output for " + ", ".join(report.non_finite))

    for size, items in by_size.items():
        stats = error_stats([o for _, o, _ in items], [r for _, _, r in items])
        row = Row(size, len(items), stats.max_lsb, stats.pct_over_1lsb, stats.psnr)
        if all(s.clean is not None for s, _, _ in items):
            gt, gt_t, ss, ss_t = [], [], [], []
            for s, o, r in items:
                assert s.clean is not None
                clean = _hwc(s.clean)
                o_img, r_img = np.clip(_hwc(o), 0, 1), np.clip(_hwc(r), 0, 1)
                gt.append(psnr(clean, o_img))
                gt_t.append(psnr(clean, r_img))
                ss.append(structural_similarity(clean, o_img, data_range=1.0, channel_axis=2))
                ss_t.append(structural_similarity(clean, r_img, data_range=1.0, channel_axis=2))
            row.gt_psnr, row.torch_gt_psnr = float(np.mean(gt)), float(np.mean(gt_t))
            row.gt_ssim, row.torch_gt_ssim = float(np.mean(ss)), float(np.mean(ss_t))
        report.rows.append(row)
        _check(report, row, tolerance)
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


def write_golden(
    path: Path,
    precision: str,
    samples: list[Sample],
    references: list[np.ndarray],
    tolerance: Tolerance,
) -> None:
    """Golden samples: a few degraded crops at two sizes (one odd), with torch's outputs and the
    precision's tolerance, so the runtime can verify the model on any device without torch."""
    import json

    pairs = list(zip(samples, references, strict=True))
    chosen = [p for p in pairs if p[0].size == "37x53"][:2]  # odd size
    chosen += [p for p in pairs if p[0].size == "96x128"][:2]
    arrays: dict[str, np.ndarray] = {}
    names = []
    for k, (s, r) in enumerate(chosen):
        arrays[f"input_{k}"] = s.degraded
        arrays[f"output_{k}"] = r.astype(np.float32)
        names.append({"photo": s.name, "size": s.size})
    meta = {"precision": precision, "tolerance": dataclasses.asdict(tolerance), "samples": names}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)

    with open(path, "wb") as fh:  # a staged temporary file: export renames it when all pass
        np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
