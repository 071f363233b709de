"""Accuracy and speed of exported variants against one reference, on real degraded photos.

Runners are separate from comparison (as in Polygraphy): a runner has a ``name`` and
``infer(batch) -> array`` (NCHW float32 in the model's range); :func:`compare` runs the reference
and every variant on the same samples and returns a :class:`CompareResult`, truthy when every
threshold holds. The comparison itself is pure numpy; the reference may be

- an fp32 ONNX file: :class:`OnnxRunner` (onnxruntime on the CPU), torch-free;
- a training run folder or a ``.safetensors`` checkpoint: :func:`torch_runner` (needs
  ``edgegen[train]``; torch is imported only there).

Inputs are real photos degraded as the reference's spec says (its ``degradation``), with fixed
seeds, so the clean photo is the ground truth (:mod:`edgegen.runtime.degrade`, the code training
uses: numpy, and Pillow when called).

SSIM uses scikit-image's ``structural_similarity`` when it is importable and is ``None``
otherwise: the runtime core never depends on scikit-image.

With ``crops=True`` it also keeps, for the HTML report (:mod:`edgegen.runtime.report`), one
small center crop per photo (of its largest sample): the degraded input, the reference output and
the ground truth in :attr:`CompareResult.crops`, each variant's output in
:attr:`VariantResult.crops`; never whole images, and never in the JSON.

JSON keys (:meth:`CompareResult.to_dict`, stable): ``settings``, ``reference``, ``variants``
(one object per variant x provider), ``failures``, ``passed``; see :data:`ROW_KEYS` and
:data:`VARIANT_KEYS`.
"""

from __future__ import annotations

import importlib.util
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .degrade import degradation_from_spec
from .errors import EdgegenError
from .images import BUNDLED_HELD_OUT
from .metrics import Verdict, error_stats, psnr
from .spec import ModelSpec

Size = tuple[int, int] | str  # (height, width) of the model's input, or "full"
SEED = 20240611  # the seeds export's verification uses, so samples match its own

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


class Runner(Protocol):
    name: str

    def infer(self, batch: np.ndarray) -> np.ndarray: ...


# -- runners -----------------------------------------------------------------------------------


class OnnxRunner:
    """An ONNX model through :class:`Generator.infer` on one device (cpu, cuda, tensorrt)."""

    def __init__(self, path: Path, device: str = "cpu") -> None:
        from .generator import Generator

        self.path = path
        self.device = device
        self._gen = Generator(path, device=device, tile=0)
        self.spec: ModelSpec = self._gen.spec
        self.name = path.name

    @property
    def providers(self) -> list[str]:
        return self._gen.providers

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if self.spec.layout == "NHWC":
            return self._gen.infer(batch.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        return self._gen.infer(batch)


class _TorchRunner:
    def __init__(self, name: str, module: Any, spec: ModelSpec, source: Path) -> None:
        self.name = name
        self.spec = spec
        self.path = source
        self.providers = ["torch-cpu"]
        self._module = module

    def infer(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            out = self._module(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
        return np.asarray(out.numpy(), dtype=np.float32)


def torch_runner(checkpoint: Path) -> _TorchRunner:
    """The checkpoint's model in PyTorch (fp32, CPU), rebuilt from its spec as export does."""
    try:
        import torch  # noqa: F401

        from edgegen.train.checkpoint import load_model
    except ModuleNotFoundError as exc:
        raise EdgegenError(
            f"reference {checkpoint} is a checkpoint; running it needs {exc.name or 'torch'}, "
            "which is not installed: pip install 'edgegen[train]'"
        ) from None
    model, spec, ckpt = load_model(checkpoint, prefer="best")
    return _TorchRunner(ckpt.path.name, model, spec, ckpt.path)


def load_reference(path: Path) -> OnnxRunner | _TorchRunner:
    """An fp32 ONNX file (torch-free) or a training run / checkpoint (PyTorch)."""
    if not path.exists():
        raise EdgegenError(f"reference {path}: no such file or folder")
    if path.is_dir() or path.suffix == ".safetensors":
        return torch_runner(path)
    if path.suffix != ".onnx":
        raise EdgegenError(
            f"reference {path}: not an .onnx file, a .safetensors checkpoint or a run folder"
        )
    runner = OnnxRunner(path, "cpu")
    if runner.spec.precision != "fp32":
        raise EdgegenError(
            f"reference {path} is {runner.spec.precision}; the reference must be fp32 ONNX "
            "or a checkpoint"
        )
    return runner


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
    from .providers import DEVICES, available_providers

    available = available_providers()
    return [d for d in ("cpu", "cuda", "tensorrt") if DEVICES[d][0] in available]


def check_devices(devices: Sequence[str]) -> list[str]:
    """Validate requested devices; an unknown or unavailable one raises with the reason."""
    from .providers import resolve_providers

    checked = []
    for device in devices:
        key = device.strip().lower()
        if key not in ("cpu", "cuda", "tensorrt"):
            raise EdgegenError(f"unknown provider {device!r}; choose cpu, cuda or tensorrt")
        resolve_providers(key)  # raises EdgegenError naming why it is unavailable
        if key not in checked:
            checked.append(key)
    return checked


# -- samples -----------------------------------------------------------------------------------


@dataclass
class Sample:
    photo: str
    size: str  # "HxW" of the model's input, or "full"
    degraded: np.ndarray  # float32 HWC in [0, 1], the model's input size
    clean: np.ndarray  # float32 HWC in [0, 1], the output size: ground truth


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


def photo_paths(images: str) -> list[Path]:
    """``bundled``: the held-out photos shipped with scikit-image; or image files under a folder."""
    from .images import IMAGE_SUFFIXES

    if images == "bundled":
        spec = importlib.util.find_spec("skimage")
        if spec is None or not spec.submodule_search_locations:
            raise EdgegenError("--images bundled needs scikit-image: pip install 'edgegen[train]'")
        root = Path(next(iter(spec.submodule_search_locations))) / "data"
        paths = [root / n for n in BUNDLED_HELD_OUT]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise EdgegenError(f"scikit-image at {root} lacks {', '.join(missing)}; reinstall it")
        return paths
    root = Path(images)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise EdgegenError(f"--images {images}: no such folder")
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise EdgegenError(f"--images {images}: the folder holds no images")
    return paths


def _unit_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """uint8/uint16 HW/HWC -> float32 HWC in [0, 1] with ``channels`` channels (alpha over
    white, gray repeated, RGB to gray by ITU-R 601 luma)."""
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    x = image.astype(np.float32) / np.float32(scale)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.shape[2] == 4:
        alpha = x[:, :, 3:]
        x = x[:, :, :3] * alpha + (1.0 - alpha)
    if channels == 3 and x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    elif channels == 1 and x.shape[2] == 3:
        x = (x @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[:, :, None]
    return np.ascontiguousarray(x, dtype=np.float32)


def make_samples(spec: ModelSpec, images: str, sizes: Sequence[Size]) -> list[Sample]:
    """Degraded center crops of each photo at each size, fixed seeds (as export verifies)."""
    from .images import read_image

    if not spec.degradation:
        raise EdgegenError("the reference's spec names no degradation: no ground truth to make")
    degrade = degradation_from_spec(spec.degradation)
    s = spec.scale
    samples = []
    for i, path in enumerate(photo_paths(images)):
        clean_full = _unit_channels(read_image(path), spec.in_channels)
        height, width = clean_full.shape[:2]
        if height < s or width < s:
            raise EdgegenError(f"image {path} ({height}x{width}) is too small for scale {s}")
        for j, size in enumerate(sizes):
            if size == "full":
                h, w, label = height // s, width // s, "full"
            else:
                assert isinstance(size, tuple)
                h, w = min(size[0], height // s), min(size[1], width // s)
                label = f"{size[0]}x{size[1]}"
            top, left = (height - h * s) // 2, (width - w * s) // 2
            clean = np.ascontiguousarray(clean_full[top : top + h * s, left : left + w * s])
            rng = np.random.default_rng((SEED, i, j))
            degraded = np.asarray(degrade(clean, rng), dtype=np.float32)
            samples.append(Sample(path.name, label, degraded, clean))
    return samples


# -- running -----------------------------------------------------------------------------------


def _to_model(spec: ModelSpec, hwc: np.ndarray) -> np.ndarray:
    x = hwc[:, :, ::-1] if spec.color_order == "BGR" else hwc
    lo, hi = spec.value_range
    if (lo, hi) != (0.0, 1.0):
        x = x * np.float32(hi - lo) + np.float32(lo)
    pm = spec.pad_multiple
    h, w = x.shape[:2]
    ph, pw = -h % pm, -w % pm
    if ph or pw:
        widths = ((0, ph), (0, pw), (0, 0))
        x = np.pad(x, widths, mode="reflect") if ph < h and pw < w else np.pad(x, widths, "edge")
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def _from_model(spec: ModelSpec, nchw: np.ndarray, h: int, w: int) -> np.ndarray:
    """Model output -> float32 HWC in [0, 1] (clipped), RGB, cropped to ``h`` x ``w``."""
    y = nchw[0].transpose(1, 2, 0)[:h, :w]
    lo, hi = spec.value_range
    if (lo, hi) != (0.0, 1.0):
        y = (y - np.float32(lo)) / np.float32(hi - lo)
    if spec.color_order == "BGR":
        y = y[:, :, ::-1]
    return np.ascontiguousarray(np.clip(y, 0.0, 1.0), dtype=np.float32)


@dataclass
class RunOutput:
    outputs: list[np.ndarray]  # HWC in [0, 1], one per sample
    first_call_s: float
    latencies_s: dict[str, list[float]]  # per size label, timed after warm-up


def run_samples(
    runner: Runner,
    spec: ModelSpec,
    samples: Sequence[Sample],
    repeats: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> RunOutput:
    """One warm-up pass (its first call timed apart, and its outputs kept), then ``repeats``
    timed passes over every sample."""
    batches = [_to_model(spec, s.degraded) for s in samples]
    outputs: list[np.ndarray] = []
    first = 0.0
    for k, (sample, batch) in enumerate(zip(samples, batches, strict=True)):
        start = clock()
        raw = runner.infer(batch)
        if k == 0:
            first = clock() - start
        h, w = sample.clean.shape[:2]
        expected = (1, spec.out_channels, batch.shape[2] * spec.scale, batch.shape[3] * spec.scale)
        if raw.shape != expected:
            raise EdgegenError(f"{runner.name}: output shape {raw.shape}, expected {expected}")
        outputs.append(_from_model(spec, np.asarray(raw, dtype=np.float32), h, w))
    latencies: dict[str, list[float]] = {}
    for _ in range(repeats):
        for sample, batch in zip(samples, batches, strict=True):
            start = clock()
            runner.infer(batch)
            latencies.setdefault(sample.size, []).append(clock() - start)
    return RunOutput(outputs, first, latencies)


# -- comparison (pure numpy) -------------------------------------------------------------------


def _ssim_function() -> Callable[[np.ndarray, np.ndarray], float] | None:
    if importlib.util.find_spec("skimage") is None:
        return None
    from skimage.metrics import structural_similarity

    def ssim(a: np.ndarray, b: np.ndarray) -> float:
        return float(structural_similarity(a, b, data_range=1.0, channel_axis=2))  # type: ignore[no-untyped-call]

    return ssim


CROP = 192  # the largest side, in output pixels, of the crops kept for the report


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
        if j is None or s.clean.shape[0] * s.clean.shape[1] > (
            samples[j].clean.shape[0] * samples[j].clean.shape[1]
        ):
            best[s.photo] = k
    return list(best.values())


def crop_box(height: int, width: int, scale: int, limit: int = CROP) -> tuple[int, int, int, int]:
    """A center crop (top, left, height, width) of at most ``limit`` output pixels a side, on the
    scale's grid so that it maps onto whole input pixels."""
    side = max(scale, limit // scale * scale)
    h, w = min(height, side), min(width, side)
    top = (height - h) // 2 // scale * scale
    left = (width - w) // 2 // scale * scale
    return top, left, h, w


def _crop(image: np.ndarray, box: tuple[int, int, int, int], scale: int = 1) -> np.ndarray:
    top, left, h, w = (v // scale for v in box)
    return np.array(image[top : top + h, left : left + w], dtype=np.float32, copy=True)


@dataclass(frozen=True)
class Thresholds:
    """None: not checked. max_lsb: largest error vs the reference output in 8-bit steps;
    min_psnr: PSNR vs the reference output (dB); max_psnr_drop: how far the PSNR vs ground truth
    may fall below the reference's own (dB)."""

    max_lsb: float | None = None
    min_psnr: float | None = None
    max_psnr_drop: float | None = None


@dataclass
class SizeRow:
    size: str
    images: int
    max_lsb: float
    mean_lsb: float
    pct_over_1lsb: float
    psnr_vs_ref: float
    ssim_vs_ref: float | None
    gt_psnr: float
    gt_ssim: float | None
    ref_gt_psnr: float
    ref_gt_ssim: float | None
    gt_psnr_drop: float
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None


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
    rows: list[SizeRow] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    # Output crops, one per :attr:`CompareResult.crops` entry (``crops=True`` only; not in JSON).
    crops: list[np.ndarray] = field(default_factory=list, repr=False, compare=False)

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

    @property
    def failures(self) -> list[str]:
        return [f for v in self.variants for f in v.failures]

    @property
    def passed(self) -> bool:
        return not self.failures

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


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _percentile_ms(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) * 1000.0 if values else 0.0


def _mean(values: Sequence[float | None]) -> float | None:
    if any(v is None for v in values) or not values:
        return None
    return float(np.mean([v for v in values if v is not None]))


def compare_outputs(
    samples: Sequence[Sample],
    reference: Sequence[np.ndarray],
    outputs: Sequence[np.ndarray],
    ssim: Callable[[np.ndarray, np.ndarray], float] | None = None,
) -> list[SizeRow]:
    """Per size: error vs the reference output (pooled over photos, in LSB and dB) and quality vs
    the ground truth (mean over photos), for the variant and for the reference itself."""
    groups: dict[str, list[int]] = {}
    for k, s in enumerate(samples):
        groups.setdefault(s.size, []).append(k)
    rows = []
    for size, idx in groups.items():
        outs = [outputs[k] for k in idx]
        refs = [reference[k] for k in idx]
        cleans = [samples[k].clean for k in idx]
        stats = error_stats(outs, refs)
        diffs = np.concatenate([np.abs(o - r).ravel() for o, r in zip(outs, refs, strict=True)])
        gt = float(np.mean([psnr(c, o) for c, o in zip(cleans, outs, strict=True)]))
        ref_gt = float(np.mean([psnr(c, r) for c, r in zip(cleans, refs, strict=True)]))
        rows.append(
            SizeRow(
                size=size,
                images=len(idx),
                max_lsb=stats.max_lsb,
                mean_lsb=float(diffs.astype(np.float64).mean()) * 255.0,
                pct_over_1lsb=stats.pct_over_1lsb,
                psnr_vs_ref=stats.psnr,
                ssim_vs_ref=_mean([ssim(r, o) for r, o in zip(refs, outs, strict=True)])
                if ssim
                else None,
                gt_psnr=gt,
                gt_ssim=_mean([ssim(c, o) for c, o in zip(cleans, outs, strict=True)])
                if ssim
                else None,
                ref_gt_psnr=ref_gt,
                ref_gt_ssim=_mean([ssim(c, r) for c, r in zip(cleans, refs, strict=True)])
                if ssim
                else None,
                gt_psnr_drop=ref_gt - gt,
            )
        )
    return rows


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
    if limits.max_psnr_drop is not None and row.gt_psnr_drop > limits.max_psnr_drop:
        out.append(
            f"{at}: PSNR vs ground truth {row.gt_psnr_drop:.3f} dB below the reference's "
            f"> --max-psnr-drop {limits.max_psnr_drop}"
        )
    return out


def _same_io(ref: ModelSpec, var: ModelSpec) -> str | None:
    for key in ("task", "scale", "in_channels", "out_channels"):
        if getattr(ref, key) != getattr(var, key):
            return f"{key} {getattr(var, key)!r}, the reference's {getattr(ref, key)!r}"
    return None


def compare(
    reference: Path,
    variants: Sequence[Path],
    devices: Sequence[str] | None = None,
    images: str = "bundled",
    sizes: Sequence[Size] = ("full",),
    thresholds: Thresholds | None = None,
    repeats: int = 3,
    crops: bool = False,
) -> CompareResult:
    """Run the reference and each variant x device on the same degraded photos and compare;
    ``crops``: keep one small center crop per photo for :mod:`edgegen.runtime.report`."""
    limits = thresholds or Thresholds()
    paths = expand_variants(variants)
    chosen = check_devices(devices) if devices else default_devices()
    ref = load_reference(reference)
    runners: list[tuple[Path, str, OnnxRunner]] = []
    for path in paths:
        for device in chosen:
            runner = OnnxRunner(path, device)
            mismatch = _same_io(ref.spec, runner.spec)
            if mismatch:
                raise EdgegenError(f"variant {path} does not match the reference: {mismatch}")
            runners.append((path, device, runner))
    samples = make_samples(ref.spec, images, sizes)
    ssim = _ssim_function()
    ref_run = run_samples(ref, ref.spec, samples, repeats)
    ref_rows = compare_outputs(samples, ref_run.outputs, ref_run.outputs, ssim)
    all_ref = [t for ts in ref_run.latencies_s.values() for t in ts]
    result = CompareResult(
        settings={
            "images": images,
            "sizes": [s if isinstance(s, str) else f"{s[0]}x{s[1]}" for s in sizes],
            "photos": sorted({s.photo for s in samples}),
            "providers": list(chosen),
            "repeats": repeats,
            "thresholds": {
                "max_lsb": limits.max_lsb,
                "min_psnr": limits.min_psnr,
                "max_psnr_drop": limits.max_psnr_drop,
            },
            "degradation": ref.spec.degradation,
            "ssim": "skimage" if ssim else None,
        },
        reference={
            "name": ref.name,
            "path": str(ref.path),
            "kind": "onnx" if isinstance(ref, OnnxRunner) else "checkpoint",
            "providers_ran": list(ref.providers),
            "first_call_ms": ref_run.first_call_s * 1000.0,
            "latency_p50_ms": _percentile_ms(all_ref, 50),
            "latency_p95_ms": _percentile_ms(all_ref, 95),
            "rows": [
                {
                    "size": r.size,
                    "images": r.images,
                    "gt_psnr": r.gt_psnr,
                    "gt_ssim": r.gt_ssim,
                    "latency_p50_ms": _percentile_ms(ref_run.latencies_s[r.size], 50),
                    "latency_p95_ms": _percentile_ms(ref_run.latencies_s[r.size], 95),
                }
                for r in ref_rows
            ],
        },
        scale=ref.spec.scale,
    )
    s = ref.spec.scale
    picked = crop_samples(samples) if crops else []
    boxes = [crop_box(samples[k].clean.shape[0], samples[k].clean.shape[1], s) for k in picked]
    for k, box in zip(picked, boxes, strict=True):
        sample = samples[k]
        result.crops.append(
            Crop(
                photo=sample.photo,
                size=sample.size,
                degraded=_crop(sample.degraded, box, s),
                reference=_crop(ref_run.outputs[k], box),
                clean=_crop(sample.clean, box),
            )
        )
    for path, device, runner in runners:
        run = run_samples(runner, runner.spec, samples, repeats)
        rows = compare_outputs(samples, ref_run.outputs, run.outputs, ssim)
        every = [t for ts in run.latencies_s.values() for t in ts]
        vr = VariantResult(
            name=path.name,
            path=str(path),
            precision=runner.spec.precision,
            provider=device,
            providers_ran=runner.providers,
            model_bytes=path.stat().st_size,
            first_call_ms=run.first_call_s * 1000.0,
            latency_p50_ms=_percentile_ms(every, 50),
            latency_p95_ms=_percentile_ms(every, 95),
        )
        for row in rows:
            row.latency_p50_ms = _percentile_ms(run.latencies_s[row.size], 50)
            row.latency_p95_ms = _percentile_ms(run.latencies_s[row.size], 95)
            vr.failures += threshold_failures(f"{path.name} on {device}", row, limits)
        vr.rows = rows
        vr.crops = [_crop(run.outputs[k], box) for k, box in zip(picked, boxes, strict=True)]
        result.variants.append(vr)
    return result


# -- formats -----------------------------------------------------------------------------------

COLUMNS = (
    ("variant", "name", "s"),
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


def table_rows(result: CompareResult) -> list[list[str]]:
    """Header then one row per variant x provider x size, as strings."""
    rows = [[c[0] for c in COLUMNS]]
    for v in result.variants:
        for r in v.rows:
            values: dict[str, Any] = {**vars(r), "name": v.name, "provider": v.provider}
            values["model_mb"] = v.model_bytes / 1e6
            rows.append(
                [
                    "-" if values[key] is None else format(values[key], fmt)
                    for _, key, fmt in COLUMNS
                ]
            )
    return rows


def _summary(result: CompareResult) -> list[str]:
    ref = result.reference
    lines = [
        f"reference {ref['name']} ({ref['kind']}, {', '.join(ref['providers_ran'])}): "
        + ", ".join(f"{r['size']} GT PSNR {r['gt_psnr']:.2f} dB" for r in ref["rows"])
    ]
    for v in result.variants:
        lines.append(
            f"{v.name} on {v.provider} ran on {', '.join(v.providers_ran)}; "
            f"first call {v.first_call_ms:.1f} ms"
        )
    lines += [f"FAIL: {f}" for f in result.failures]
    lines.append("PASS" if result.passed else "FAIL")
    return lines


def format_table(result: CompareResult) -> str:
    rows = table_rows(result)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([*lines, *_summary(result)])


def format_markdown(result: CompareResult) -> str:
    rows = table_rows(result)
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join([*lines, "", *(f"- {line}" for line in _summary(result))])


def format_json(result: CompareResult) -> str:
    import json

    return json.dumps(result.to_dict(), indent=2, allow_nan=False)
