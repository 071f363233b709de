"""Accuracy and speed of exported variants against one reference, on real degraded photos.

Runners are apart from comparison (as in Polygraphy): :func:`compare` takes a reference runner
(the fp32 ONNX model, or the PyTorch model) and variant runners, runs each on the same held-out
samples (:mod:`edgegen.evaluation.samples`), and compares their outputs in pure numpy; the
:class:`CompareResult` is truthy when every threshold holds. :func:`compare_outputs` is the
comparison itself, which export's verification shares.

SSIM uses scikit-image's ``structural_similarity`` when it is importable and is ``None``
otherwise: the torch-free comparison never depends on scikit-image.

With ``crops=True`` it also keeps, for the HTML report (:mod:`edgegen.evaluation.report`), one
small centre crop per photo (of its largest sample): the degraded input, the reference output
and the ground truth in :attr:`CompareResult.crops`, each variant's output in
:attr:`VariantResult.crops`; never whole images, and never in the JSON.

JSON keys (:meth:`CompareResult.to_dict`, stable): ``settings``, ``reference``, ``variants``
(one object per variant x provider), ``failures``, ``passed``; see :data:`ROW_KEYS` and
:data:`VARIANT_KEYS`.
"""

from __future__ import annotations

import importlib.util
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgegen.runners import Runner, onnx_runner
from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.metrics import Verdict, error_stats, psnr
from edgegen.runtime.model_io import output_shape, padded_input, to_image
from edgegen.runtime.providers import DEVICES, available_providers, resolve_providers
from edgegen.runtime.spec import ModelSpec

from .formats import Column
from .samples import Sample, Size, make_samples, size_label

# Keys of one size row and of one variant x provider object in the JSON (stable, documented).
ROW_KEYS = (
    "size",
    "images",
    "max_lsb",
    "mean_lsb",
    "pct_over_1lsb",
    "psnr_vs_ref",
    "ssim_vs_ref",
    "gt_psnr",
    "gt_ssim",
    "ref_gt_psnr",
    "ref_gt_ssim",
    "gt_psnr_drop",
    "latency_p50_ms",
    "latency_p95_ms",
)
VARIANT_KEYS = (
    "name",
    "path",
    "precision",
    "runtime",
    "provider",
    "providers_ran",
    "model_bytes",
    "first_call_ms",
    "latency_p50_ms",
    "latency_p95_ms",
    "passed",
    "failures",
    "rows",
)
DEVICE_NAMES = ("cpu", "cuda", "tensorrt")
CROP = 192  # the largest side, in output pixels, of the crops kept for the report
NO_THRESHOLDS = "no thresholds set"  # the verdict when nothing was checked: not a PASS

Ssim = Callable[[np.ndarray, np.ndarray], float]


# -- what to compare ---------------------------------------------------------------------------


def expand_variants(paths: Sequence[Path]) -> list[Path]:
    """ONNX files as given; a folder becomes its ``model.*.onnx`` files (sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            matches = sorted(p for p in path.glob("model.*.onnx") if p.is_file())
            if not matches:
                raise EdgegenError(f"variant folder {path} holds no model.*.onnx files")
            found += matches
        elif not path.exists():
            raise EdgegenError(f"variant {path}: no such file")
        elif path.suffix != ".onnx":
            raise EdgegenError(f"variant {path} is not an .onnx file")
        else:
            found.append(path)
    unique: dict[Path, Path] = {}
    for p in found:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def default_devices() -> list[str]:
    """Every device whose provider this onnxruntime offers: cpu, then cuda, tensorrt."""
    available = available_providers()
    return [d for d in DEVICE_NAMES if DEVICES[d][0] in available]


def check_devices(devices: Sequence[str]) -> list[str]:
    """Validate requested devices; an unknown or unavailable one raises with the reason."""
    checked = []
    for device in devices:
        key = device.strip().lower()
        if key not in DEVICE_NAMES:
            raise EdgegenError(f"unknown provider {device!r}; choose cpu, cuda or tensorrt")
        resolve_providers(key)  # raises EdgegenError naming why it is unavailable
        if key not in checked:
            checked.append(key)
    return checked


def onnx_reference(path: Path) -> Runner:
    """An fp32 ONNX reference on onnxruntime's CPU provider (torch-free)."""
    if not path.exists():
        raise EdgegenError(f"reference {path}: no such file or folder")
    if path.suffix != ".onnx":
        raise EdgegenError(
            f"reference {path}: not an .onnx file, a .safetensors checkpoint or a run folder"
        )
    runner = onnx_runner(path, "onnxruntime", "cpu")
    if runner.spec.precision != "fp32":
        raise EdgegenError(
            f"reference {path} is {runner.spec.precision}; the reference must be fp32 ONNX "
            "or a checkpoint"
        )
    return runner


def same_io(reference: ModelSpec, variant: ModelSpec) -> str | None:
    """Why a variant cannot be compared with the reference, or None."""
    for key in ("task", "scale", "in_channels", "out_channels"):
        if getattr(reference, key) != getattr(variant, key):
            return f"{key} {getattr(variant, key)!r}, the reference's {getattr(reference, key)!r}"
    return None


def onnx_variants(
    paths: Sequence[Path],
    devices: Sequence[str],
    reference: ModelSpec,
    runtimes: Sequence[str] = ("onnxruntime",),
    **options: Any,
) -> list[Runner]:
    """A runner per variant file x runtime (x device, for onnxruntime's providers; the other
    runtimes run on the CPU), each checked against the reference's spec."""
    runners = []
    for path in expand_variants(paths):
        for runtime in runtimes:
            on = devices if runtime.split(":")[0] == "onnxruntime" else ["cpu"]
            for device in on:
                runner = onnx_runner(path, runtime, device, **options)
                mismatch = same_io(reference, runner.spec)
                if mismatch:
                    raise EdgegenError(f"variant {path} does not match the reference: {mismatch}")
                runners.append(runner)
    return runners


# -- running -----------------------------------------------------------------------------------


@dataclass
class RunOutput:
    outputs: list[np.ndarray]  # HWC in [0, 1] (clipped), one per sample
    first_call_s: float
    latencies_s: dict[str, list[float]]  # per size label, timed after warm-up


def run_samples(
    runner: Runner,
    samples: Sequence[Sample],
    repeats: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> RunOutput:
    """One warm-up pass (its first call timed apart, and its outputs kept), then ``repeats``
    timed passes over every sample."""
    spec = runner.spec
    batches = [padded_input(spec, s.degraded) for s in samples]
    outputs: list[np.ndarray] = []
    first = 0.0
    for k, (sample, batch) in enumerate(zip(samples, batches, strict=True)):
        start = clock()
        raw = runner.infer(batch)
        if k == 0:
            first = clock() - start
        expected = output_shape(spec, batch.shape)
        if raw.shape != expected:
            raise EdgegenError(f"{runner.name}: output shape {raw.shape}, expected {expected}")
        h, w = sample.degraded.shape[0] * spec.scale, sample.degraded.shape[1] * spec.scale
        outputs.append(to_image(spec, raw, h, w))
    latencies: dict[str, list[float]] = {}
    for _ in range(repeats):
        for sample, batch in zip(samples, batches, strict=True):
            start = clock()
            runner.infer(batch)
            latencies.setdefault(sample.size, []).append(clock() - start)
    return RunOutput(outputs, first, latencies)


# -- comparison (pure numpy) -------------------------------------------------------------------


def ssim_function() -> Ssim | None:
    """scikit-image's SSIM on HWC images in [0, 1], or None where it is not installed."""
    if importlib.util.find_spec("skimage") is None:
        return None
    from skimage.metrics import structural_similarity

    def ssim(a: np.ndarray, b: np.ndarray) -> float:
        return float(structural_similarity(a, b, data_range=1.0, channel_axis=2))  # type: ignore[no-untyped-call]

    return ssim


@dataclass
class SizeRow:
    size: str
    images: int
    max_lsb: float
    mean_lsb: float
    pct_over_1lsb: float
    psnr_vs_ref: float
    ssim_vs_ref: float | None
    gt_psnr: float | None
    gt_ssim: float | None
    ref_gt_psnr: float | None
    ref_gt_ssim: float | None
    gt_psnr_drop: float | None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values))


def compare_outputs(
    samples: Sequence[Sample],
    reference: Sequence[np.ndarray],
    outputs: Sequence[np.ndarray],
    ssim: Ssim | None = None,
) -> list[SizeRow]:
    """Per size: error vs the reference output (pooled over photos, in LSB and dB) and quality vs
    the ground truth (mean over photos), for the variant and for the reference itself. Images
    are HWC in [0, 1]; without ground truth (a sample's ``clean`` None) those fields are None."""
    groups: dict[str, list[int]] = {}
    for k, s in enumerate(samples):
        groups.setdefault(s.size, []).append(k)
    rows = []
    for size, idx in groups.items():
        outs = [outputs[k] for k in idx]
        refs = [reference[k] for k in idx]
        stats = error_stats(outs, refs)
        diffs = np.concatenate([np.abs(o - r).ravel() for o, r in zip(outs, refs, strict=True)])
        row = SizeRow(
            size=size,
            images=len(idx),
            max_lsb=stats.max_lsb,
            mean_lsb=float(diffs.astype(np.float64).mean()) * 255.0,
            pct_over_1lsb=stats.pct_over_1lsb,
            psnr_vs_ref=stats.psnr,
            ssim_vs_ref=_mean([ssim(r, o) for r, o in zip(refs, outs, strict=True)])
            if ssim
            else None,
            gt_psnr=None,
            gt_ssim=None,
            ref_gt_psnr=None,
            ref_gt_ssim=None,
            gt_psnr_drop=None,
        )
        cleans = [samples[k].clean for k in idx]
        if all(c is not None for c in cleans):
            _ground_truth(row, [c for c in cleans if c is not None], outs, refs, ssim)
        rows.append(row)
    return rows


def _ground_truth(
    row: SizeRow,
    cleans: Sequence[np.ndarray],
    outs: Sequence[np.ndarray],
    refs: Sequence[np.ndarray],
    ssim: Ssim | None,
) -> None:
    row.gt_psnr = _mean([psnr(c, o) for c, o in zip(cleans, outs, strict=True)])
    row.ref_gt_psnr = _mean([psnr(c, r) for c, r in zip(cleans, refs, strict=True)])
    row.gt_psnr_drop = row.ref_gt_psnr - row.gt_psnr
    if ssim is not None:
        row.gt_ssim = _mean([ssim(c, o) for c, o in zip(cleans, outs, strict=True)])
        row.ref_gt_ssim = _mean([ssim(c, r) for c, r in zip(cleans, refs, strict=True)])


@dataclass(frozen=True)
class Thresholds:
    """None: not checked. max_lsb: largest error vs the reference output in 8-bit steps;
    min_psnr: PSNR vs the reference output (dB); max_psnr_drop: how far the PSNR vs ground truth
    may fall below the reference's own (dB)."""

    max_lsb: float | None = None
    min_psnr: float | None = None
    max_psnr_drop: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return {
            "max_lsb": self.max_lsb,
            "min_psnr": self.min_psnr,
            "max_psnr_drop": self.max_psnr_drop,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Thresholds:
        """The inverse of :meth:`to_dict` (a missing key or ``None``: not checked)."""
        data = data or {}
        return cls(data.get("max_lsb"), data.get("min_psnr"), data.get("max_psnr_drop"))

    def describe(self) -> list[str]:
        """One readable line per threshold that is set, with its option; [] when none is."""
        lines = []
        if self.max_lsb is not None:
            lines.append(f"max LSB ≤ {_number(self.max_lsb)} (--max-lsb)")
        if self.min_psnr is not None:
            lines.append(f"PSNR vs reference ≥ {_number(self.min_psnr)} dB (--min-psnr)")
        if self.max_psnr_drop is not None:
            lines.append(
                f"PSNR vs ground truth at most {_number(self.max_psnr_drop)} dB below the "
                "reference's (--max-psnr-drop)"
            )
        return lines


def _number(value: float) -> str:
    """A threshold as the user would write it: 2, 0.5, 40 (not 2.0, 40.0)."""
    return format(value, ".10g")


def threshold_failures(where: str, row: SizeRow, limits: Thresholds) -> list[str]:
    """One line per broken threshold, naming ``where`` (variant on provider) and the size."""
    at = f"{where} at {row.size}"
    out = []
    if limits.max_lsb is not None and row.max_lsb > limits.max_lsb:
        out.append(f"{at}: max error {row.max_lsb:.4f} LSB > --max-lsb {limits.max_lsb}")
    if limits.min_psnr is not None and row.psnr_vs_ref < limits.min_psnr:
        out.append(
            f"{at}: PSNR vs reference {row.psnr_vs_ref:.2f} dB < --min-psnr {limits.min_psnr}"
        )
    drop = row.gt_psnr_drop
    if limits.max_psnr_drop is not None and drop is not None and drop > limits.max_psnr_drop:
        out.append(
            f"{at}: PSNR vs ground truth {drop:.3f} dB below the reference's "
            f"> --max-psnr-drop {limits.max_psnr_drop}"
        )
    return out


# -- crops for the report ----------------------------------------------------------------------


@dataclass
class Crop:
    """One photo's crops for the report: float32 HWC in [0, 1]; ``degraded`` at the model's input
    resolution (the output's divided by the scale), the others at the output's."""

    photo: str
    size: str
    degraded: np.ndarray
    reference: np.ndarray
    clean: np.ndarray


def crop_samples(samples: Sequence[Sample]) -> list[int]:
    """The index of one sample per photo (its largest; the first of equals), in photo order."""
    best: dict[str, int] = {}
    for k, s in enumerate(samples):
        j = best.get(s.photo)
        if j is None or s.degraded.shape[0] * s.degraded.shape[1] > (
            samples[j].degraded.shape[0] * samples[j].degraded.shape[1]
        ):
            best[s.photo] = k
    return list(best.values())


def crop_box(height: int, width: int, scale: int, limit: int = CROP) -> tuple[int, int, int, int]:
    """A centre crop (top, left, height, width) of at most ``limit`` output pixels a side, on the
    scale's grid so that it maps onto whole input pixels."""
    side = max(scale, limit // scale * scale)
    h, w = min(height, side), min(width, side)
    top = (height - h) // 2 // scale * scale
    left = (width - w) // 2 // scale * scale
    return top, left, h, w


def cut(image: np.ndarray, box: tuple[int, int, int, int], scale: int = 1) -> np.ndarray:
    top, left, h, w = (v // scale for v in box)
    return np.array(image[top : top + h, left : left + w], dtype=np.float32, copy=True)


# -- results -----------------------------------------------------------------------------------


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def where(name: str, runtime: str, device: str) -> str:
    """``NAME on DEVICE`` for onnxruntime, ``NAME on RUNTIME (DEVICE)`` for another runtime."""
    return f"{name} on {device}" if runtime == "onnxruntime" else f"{name} on {runtime} ({device})"


def percentile_ms(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) * 1000.0 if values else 0.0


@dataclass
class VariantResult(Verdict):
    name: str
    path: str
    precision: str
    provider: str  # the device asked for: cpu, cuda, tensorrt
    providers_ran: list[str]
    model_bytes: int
    first_call_ms: float
    latency_p50_ms: float
    latency_p95_ms: float
    runtime: str = "onnxruntime"  # what ran the file: onnxruntime, openvino, openvino:bf16, ...
    rows: list[SizeRow] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    # Output crops, one per :attr:`CompareResult.crops` entry (``crops=True`` only; not in JSON).
    crops: list[np.ndarray] = field(default_factory=list, repr=False, compare=False)

    @property
    def where(self) -> str:
        """How reports name the variant: ``model.int8.onnx on cpu``, or on another runtime
        ``model.int8.onnx on openvino:bf16 (cpu)``."""
        return where(self.name, self.runtime, self.provider)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in VARIANT_KEYS if k != "rows"}
        d["rows"] = [{k: _finite(getattr(r, k)) for k in ROW_KEYS} for r in self.rows]
        return {k: d[k] for k in VARIANT_KEYS}


@dataclass
class CompareResult:
    settings: dict[str, Any]
    reference: dict[str, Any]
    variants: list[VariantResult] = field(default_factory=list)
    crops: list[Crop] = field(default_factory=list, repr=False, compare=False)
    scale: int = 1

    COLUMNS: ClassVar[tuple[Column, ...]] = (
        ("variant", "name", "s"),
        ("runtime", "runtime", "s"),
        ("provider", "provider", "s"),
        ("size", "size", "s"),
        ("max LSB", "max_lsb", ".3f"),
        ("mean LSB", "mean_lsb", ".4f"),
        (">1LSB %", "pct_over_1lsb", ".3f"),
        ("PSNR/ref", "psnr_vs_ref", ".2f"),
        ("SSIM/ref", "ssim_vs_ref", ".4f"),
        ("GT PSNR", "gt_psnr", ".2f"),
        ("ref GT", "ref_gt_psnr", ".2f"),
        ("drop", "gt_psnr_drop", ".3f"),
        ("GT SSIM", "gt_ssim", ".4f"),
        ("p50 ms", "latency_p50_ms", ".2f"),
        ("p95 ms", "latency_p95_ms", ".2f"),
        ("MB", "model_mb", ".3f"),
    )
    LEFT: ClassVar[frozenset[int]] = frozenset()

    @property
    def failures(self) -> list[str]:
        return [f for v in self.variants for f in v.failures]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def thresholds(self) -> Thresholds:
        """The thresholds the comparison checked (from :attr:`settings`)."""
        return Thresholds.from_dict(self.settings.get("thresholds"))

    @property
    def verdict(self) -> str:
        """``PASS`` or ``FAIL``; ``no thresholds set`` when nothing was checked (the result is
        still truthy: nothing failed)."""
        if self.failures:
            return "FAIL"
        return "PASS" if self.thresholds.describe() else NO_THRESHOLDS

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "reference": self.reference,
            "variants": [v.to_dict() for v in self.variants],
            "failures": self.failures,
            "passed": self.passed,
        }

    def records(self) -> list[Mapping[str, Any]]:
        """One record per variant x provider x size: the table's rows."""
        return [
            {
                **vars(r),
                "name": v.name,
                "runtime": v.runtime,
                "provider": v.provider,
                "model_mb": v.model_bytes / 1e6,
            }
            for v in self.variants
            for r in v.rows
        ]

    def summary(self) -> list[str]:
        ref = self.reference
        gt = ", ".join(f"{r['size']} GT PSNR {r['gt_psnr']:.2f} dB" for r in ref["rows"])
        ran = ", ".join(ref["providers_ran"])
        lines = [f"reference {ref['name']} ({ref['kind']}, {ran}): {gt}"]
        for v in self.variants:
            lines.append(
                f"{v.where} ran on {', '.join(v.providers_ran)}; "
                f"first call {v.first_call_ms:.1f} ms"
            )
        lines += [f"FAIL: {f}" for f in self.failures]
        lines.append(self.verdict)
        return lines


# -- the comparison, step by step --------------------------------------------------------------


def compare(
    reference: Runner,
    variants: Sequence[Runner],
    images: str = "bundled",
    sizes: Sequence[Size] = ("full",),
    thresholds: Thresholds | None = None,
    repeats: int = 3,
    crops: bool = False,
) -> CompareResult:
    """Run the reference and every variant on the same degraded photos (``images``: ``bundled``
    or a folder, at ``sizes``) and compare; ``crops``: keep one small centre crop per photo for
    :mod:`edgegen.evaluation.report`."""
    limits = thresholds or Thresholds()
    for runner in variants:
        mismatch = same_io(reference.spec, runner.spec)
        if mismatch:
            raise EdgegenError(f"variant {runner.name} does not match the reference: {mismatch}")
    samples = make_samples(reference.spec, images, sizes)
    ssim = ssim_function()
    ref_run = run_samples(reference, samples, repeats)
    result = CompareResult(
        settings=_settings(reference, variants, images, sizes, samples, limits, repeats, ssim),
        reference=_reference_record(reference, samples, ref_run, ssim),
        scale=reference.spec.scale,
    )
    picked = crop_samples(samples) if crops else []
    boxes = [_box(samples[k], reference.spec.scale) for k in picked]
    result.crops = _reference_crops(samples, ref_run.outputs, picked, boxes, reference.spec.scale)
    for runner in variants:
        run = run_samples(runner, samples, repeats)
        variant = _variant_result(runner, samples, ref_run.outputs, run, limits, ssim)
        variant.crops = [cut(run.outputs[k], box) for k, box in zip(picked, boxes, strict=True)]
        result.variants.append(variant)
    return result


def _settings(
    reference: Runner,
    variants: Sequence[Runner],
    images: str,
    sizes: Sequence[Size],
    samples: Sequence[Sample],
    limits: Thresholds,
    repeats: int,
    ssim: Ssim | None,
) -> dict[str, Any]:
    return {
        "images": images,
        "sizes": [size_label(s) for s in sizes],
        "photos": sorted({s.photo for s in samples}),
        "providers": list(dict.fromkeys(v.device for v in variants)),
        "runtimes": list(dict.fromkeys(v.info.runtime for v in variants)),
        "repeats": repeats,
        "thresholds": limits.to_dict(),
        "degradation": reference.spec.degradation,
        "ssim": "skimage" if ssim else None,
    }


def _reference_record(
    reference: Runner, samples: Sequence[Sample], run: RunOutput, ssim: Ssim | None
) -> dict[str, Any]:
    """The reference's own quality against the ground truth, and its latency."""
    rows = compare_outputs(samples, run.outputs, run.outputs, ssim)
    every = [t for ts in run.latencies_s.values() for t in ts]
    info = reference.info
    return {
        "name": reference.name,
        "path": str(reference.path),
        "kind": "checkpoint" if info.runtime == "torch" else "onnx",
        "providers_ran": list(info.providers),
        "first_call_ms": run.first_call_s * 1000.0,
        "latency_p50_ms": percentile_ms(every, 50),
        "latency_p95_ms": percentile_ms(every, 95),
        "rows": [
            {
                "size": r.size,
                "images": r.images,
                "gt_psnr": r.gt_psnr,
                "gt_ssim": r.gt_ssim,
                "latency_p50_ms": percentile_ms(run.latencies_s[r.size], 50),
                "latency_p95_ms": percentile_ms(run.latencies_s[r.size], 95),
            }
            for r in rows
        ],
    }


def _box(sample: Sample, scale: int) -> tuple[int, int, int, int]:
    h, w = sample.degraded.shape[0] * scale, sample.degraded.shape[1] * scale
    return crop_box(h, w, scale)


def _reference_crops(
    samples: Sequence[Sample],
    outputs: Sequence[np.ndarray],
    picked: Sequence[int],
    boxes: Sequence[tuple[int, int, int, int]],
    scale: int,
) -> list[Crop]:
    crops = []
    for k, box in zip(picked, boxes, strict=True):
        sample = samples[k]
        clean = sample.clean if sample.clean is not None else outputs[k]
        crops.append(
            Crop(
                photo=sample.photo,
                size=sample.size,
                degraded=cut(sample.degraded, box, scale),
                reference=cut(outputs[k], box),
                clean=cut(clean, box),
            )
        )
    return crops


def _variant_result(
    runner: Runner,
    samples: Sequence[Sample],
    reference: Sequence[np.ndarray],
    run: RunOutput,
    limits: Thresholds,
    ssim: Ssim | None,
) -> VariantResult:
    rows = compare_outputs(samples, reference, run.outputs, ssim)
    every = [t for ts in run.latencies_s.values() for t in ts]
    info = runner.info
    path = runner.path
    result = VariantResult(
        name=runner.name,
        path=str(path),
        precision=info.precision,
        runtime=info.runtime,
        provider=info.device,
        providers_ran=list(info.providers),
        model_bytes=path.stat().st_size if path is not None and path.is_file() else 0,
        first_call_ms=run.first_call_s * 1000.0,
        latency_p50_ms=percentile_ms(every, 50),
        latency_p95_ms=percentile_ms(every, 95),
    )
    for row in rows:
        row.latency_p50_ms = percentile_ms(run.latencies_s[row.size], 50)
        row.latency_p95_ms = percentile_ms(run.latencies_s[row.size], 95)
        label = where(runner.name, info.runtime, info.device)
        result.failures += threshold_failures(label, row, limits)
    result.rows = rows
    return result
