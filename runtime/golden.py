"""The golden-sample format, written by export and checked on any device, without torch.

``model.<precision>.golden.npz`` beside each artifact holds model inputs ``input_k`` (NCHW
float32, padded to the pad multiple: ready for ``infer``), the PyTorch outputs ``output_k``, and
``meta`` (JSON bytes: precision, tolerance, sample names and sizes). :func:`write_golden` writes
it, :func:`load_golden` reads it, :func:`check_golden` compares outputs with it (pure numpy) and
:func:`verify_golden` runs the inputs through a model first.

Errors are measured as a person sees them (:mod:`edgegen.runtime.model_io`: back to [0, 1] and
clipped, as a saved image holds them), per sample size, in 8-bit steps: max LSB, % of values off
by more than 1 LSB, PSNR. Tolerance fields checked: ``max_lsb``, ``max_pct_over_1lsb``,
``min_psnr_vs_torch``. ``max_gt_psnr_drop`` needs the clean ground truth, which the golden file
does not hold, so it is not checked here (export checks it); a golden file with no
torch-relative limit at all is unverifiable rather than passed. Export stores one for every
precision (int8: 35 dB vs torch).
"""

from __future__ import annotations

import dataclasses
import json
import math
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EdgegenError
from .files import check_file, sha256_file
from .manifest import manifest_path, read_manifest
from .metrics import Verdict, error_stats, limit_failures
from .model_io import from_model
from .spec import ModelSpec

TORCH_RELATIVE = ("max_lsb", "max_pct_over_1lsb", "min_psnr_vs_torch")


@dataclass(frozen=True)
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

    def to_dict(self) -> dict[str, float | None]:
        return dataclasses.asdict(self)


def golden_path(model: Path) -> Path:
    """``model.fp32.onnx`` -> ``model.fp32.golden.npz``."""
    return model.with_suffix(".golden.npz")


@dataclass
class Golden:
    inputs: list[np.ndarray]
    outputs: list[np.ndarray]
    sizes: list[str]
    precision: str
    tolerance: dict[str, float | None]
    path: Path | None = None


def write_golden(
    path: Path,
    precision: str,
    inputs: Sequence[np.ndarray],
    outputs: Sequence[np.ndarray],
    names: Sequence[dict[str, str]],
    tolerance: Tolerance,
) -> None:
    """Write golden samples to ``path`` (a staged temporary file: the caller renames it).
    ``names`` describe each sample (``{"photo": ..., "size": ...}``)."""
    arrays: dict[str, np.ndarray] = {}
    for k, (x, y) in enumerate(zip(inputs, outputs, strict=True)):
        arrays[f"input_{k}"] = np.asarray(x, dtype=np.float32)
        arrays[f"output_{k}"] = np.asarray(y, dtype=np.float32)
    meta = {"precision": precision, "tolerance": tolerance.to_dict(), "samples": list(names)}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]


def load_golden(path: Path) -> Golden:
    """Read golden samples; a missing or malformed file is "unverifiable" (exit 2)."""
    if not path.exists() and not path.is_symlink():
        raise EdgegenError(f"unverifiable: no golden samples {path.name} beside the model")
    check_file(path, "golden samples")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode("utf-8"))
            count = sum(1 for k in data.files if k.startswith("input_"))
            inputs = [np.asarray(data[f"input_{k}"], dtype=np.float32) for k in range(count)]
            outputs = [np.asarray(data[f"output_{k}"], dtype=np.float32) for k in range(count)]
    except (
        OSError, EOFError, KeyError, ValueError, TypeError, RecursionError,
        zipfile.BadZipFile, zlib.error, UnicodeDecodeError,
    ) as exc:  # fmt: skip
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgegenError(
            f"unverifiable: golden samples {path} are unreadable: {reason}"
        ) from None
    if not isinstance(meta, dict):
        raise EdgegenError(f"unverifiable: golden samples {path} have a malformed meta record")
    if not inputs:
        raise EdgegenError(f"unverifiable: golden samples {path} hold no samples")
    samples = meta.get("samples") or []
    if not isinstance(samples, list):
        raise EdgegenError(f"unverifiable: golden samples {path} have a malformed sample list")
    sizes = [str(s.get("size", "?")) if isinstance(s, dict) else "?" for s in samples]
    sizes += ["?"] * (len(inputs) - len(sizes))
    tolerance = meta.get("tolerance") or {}
    if not isinstance(tolerance, dict):
        raise EdgegenError(f"unverifiable: golden samples {path} have a malformed tolerance")
    precision = str(meta.get("precision", "?"))
    return Golden(inputs, outputs, sizes[: len(inputs)], precision, tolerance, path)


def trusted_golden(
    model: Path, golden: Path | None = None, require_manifest: bool = True
) -> tuple[Golden, str | None]:
    """The golden samples of ``model``, vouched for by its manifest: their sha256 must be the
    one export recorded (a copy of another precision's samples, or edited outputs and
    tolerances, would otherwise pass). Without a manifest they are refused unless
    ``require_manifest`` is False; the returned note then says they were not vouched for."""
    path = golden if golden is not None else golden_path(model)
    manifest = manifest_path(model)
    if not manifest.is_file():
        if require_manifest:
            raise EdgegenError(
                f"unverifiable: {model} has no manifest ({manifest.name}) to vouch for its "
                "golden samples; verify against them anyway with --no-manifest "
                "(Generator.verify(require_manifest=False))"
            )
        note = f"no manifest: the golden samples {path.name} are not vouched for (--no-manifest)"
        return load_golden(path), note
    entry = read_manifest(manifest).get("golden")
    expected = entry.get("sha256") if isinstance(entry, dict) else None
    if not isinstance(expected, str):
        raise EdgegenError(
            f"unverifiable: manifest {manifest} records no sha256 for the golden samples"
        )
    if not path.is_file():
        raise EdgegenError(f"unverifiable: no golden samples {path.name} beside the model")
    check_file(path, "golden samples")
    actual = sha256_file(path)
    if actual != expected:
        raise EdgegenError(
            f"golden samples {path}: sha256 {actual[:12]}... does not match the manifest "
            f"{manifest} ({expected[:12]}...): they changed after export; restore them or "
            "re-export"
        )
    return load_golden(path), None


# A limit past these can never fail (a max error over 255 LSB, a PSNR floor under 0 dB): a
# tolerance that says so was edited, not exported, and is refused rather than passed.
TOLERANCE_BOUNDS = {
    "max_lsb": (0.0, 255.0),
    "max_pct_over_1lsb": (0.0, 100.0),
    "min_psnr_vs_torch": (0.0, 200.0),
    "max_gt_psnr_drop": (-100.0, 100.0),
}


def check_tolerance(tolerance: dict[str, Any], where: str) -> None:
    """Refuse limits that are not finite numbers inside :data:`TOLERANCE_BOUNDS`."""
    for key, value in tolerance.items():
        if value is None:
            continue
        low, high = TOLERANCE_BOUNDS.get(key, (-math.inf, math.inf))
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or not low <= value <= high:
            raise EdgegenError(
                f"unverifiable: {where} has a tolerance {key} = {value!r} that can never fail "
                f"or is not a number (expected {low:g}..{high:g})"
            )


@dataclass
class VerifyRow:
    size: str
    images: int
    max_lsb: float
    pct_over_1lsb: float
    psnr_vs_torch: float


@dataclass
class VerifyReport(Verdict):
    model: Path
    precision: str
    providers: list[str]
    tolerance: dict[str, float | None]
    rows: list[VerifyRow] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": str(self.model),
            "precision": self.precision,
            "providers": self.providers,
            "passed": self.passed,
            "tolerance": self.tolerance,
            "rows": [vars(r) for r in self.rows],
            "failures": self.failures,
            "notes": self.notes,
        }

    def table(self) -> str:
        limits = ", ".join(f"{k} {v}" for k, v in self.tolerance.items() if v is not None)
        lines = [
            f"{self.model.name} ({self.precision}) on {', '.join(self.providers)}",
            f"tolerance: {limits or 'none'}",
            f"{'size':>9} {'imgs':>4} {'max LSB':>9} {'>1LSB %':>8} {'PSNR/torch':>10}",
        ]
        for r in self.rows:
            lines.append(
                f"{r.size:>9} {r.images:>4} {r.max_lsb:9.4f} {r.pct_over_1lsb:8.4f} "
                f"{r.psnr_vs_torch:10.2f}"
            )
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"FAIL: {f}" for f in self.failures]
        lines.append("PASS" if self.passed else "FAIL")
        return "\n".join(lines)


def check_golden(
    golden: Golden,
    outputs: Sequence[np.ndarray],
    spec: ModelSpec,
    model: Path,
    providers: Sequence[str],
) -> VerifyReport:
    """Compare a model's ``outputs`` on the golden inputs with the stored torch outputs."""
    tolerance = {k: golden.tolerance.get(k) for k in TORCH_RELATIVE}
    check_tolerance(dict(golden.tolerance), f"{golden.path or golden_path(model)}")
    if all(v is None for v in tolerance.values()):
        raise EdgegenError(
            f"{golden.path or golden_path(model)}: unverifiable, its golden samples carry no "
            f"limit a device can check ({', '.join(TORCH_RELATIVE)})"
        )
    report = VerifyReport(model, golden.precision, list(providers), dict(tolerance))
    if golden.tolerance.get("max_gt_psnr_drop") is not None:
        report.notes.append("max_gt_psnr_drop needs ground truth: not checked on the device")
    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for out, ref, size in zip(outputs, golden.outputs, golden.sizes, strict=True):
        if out.shape != ref.shape:
            report.failures.append(f"{size}: output shape {out.shape}, torch {ref.shape}")
            continue
        if not np.isfinite(out).all():
            report.failures.append(f"{size}: inf/NaN in the output")
            continue
        image = np.clip(from_model(spec, out), 0.0, 1.0)
        groups.setdefault(size, []).append((image, np.clip(from_model(spec, ref), 0.0, 1.0)))
    max_lsb, max_pct, min_psnr = (tolerance.get(k) for k in TORCH_RELATIVE)
    for size, pairs in groups.items():
        stats = error_stats([o for o, _ in pairs], [r for _, r in pairs])
        report.rows.append(
            VerifyRow(size, len(pairs), stats.max_lsb, stats.pct_over_1lsb, stats.psnr)
        )
        where = f"{report.precision} at {size}"
        report.failures += limit_failures(where, stats, max_lsb, max_pct, min_psnr)
    return report


def verify_golden(
    golden: Golden,
    infer: Callable[[np.ndarray], np.ndarray],
    spec: ModelSpec,
    model: Path,
    providers: Sequence[str],
) -> VerifyReport:
    """Run the golden inputs through ``infer`` (a Generator's, a runner's) and check them."""
    return check_golden(golden, [infer(x) for x in golden.inputs], spec, model, providers)
