"""Verification on the device, without torch: a model against its golden samples.

Export writes ``model.<precision>.golden.npz`` beside each artifact: model inputs ``input_k``
(NCHW float32), the PyTorch outputs ``output_k``, and ``meta`` (JSON bytes: precision, tolerance,
sample names and sizes). :func:`verify_generator` runs the inputs on the Generator's provider and
compares, per sample size, in 8-bit steps: max LSB, % of values off by more than 1 LSB, PSNR.

Tolerance fields checked: ``max_lsb``, ``max_pct_over_1lsb``, ``min_psnr_vs_torch``.
``max_gt_psnr_drop`` needs the clean ground truth, which the golden file does not hold, so it is
not checked here (export checks it); a golden file with no torch-relative limit at all is
unverifiable rather than passed. Export stores one for every precision (int8: 35 dB vs torch).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import EdgegenError
from .metrics import Verdict, error_stats, limit_failures

if TYPE_CHECKING:
    from .generator import Generator

TORCH_RELATIVE = ("max_lsb", "max_pct_over_1lsb", "min_psnr_vs_torch")


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


def load_golden(path: Path) -> Golden:
    """Read golden samples; a missing or malformed file is "unverifiable" (exit 2)."""
    if not path.is_file():
        raise EdgegenError(f"unverifiable: no golden samples {path.name} beside the model")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode("utf-8"))
            count = sum(1 for k in data.files if k.startswith("input_"))
            inputs = [np.asarray(data[f"input_{k}"], dtype=np.float32) for k in range(count)]
            outputs = [np.asarray(data[f"output_{k}"], dtype=np.float32) for k in range(count)]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise EdgegenError(f"unverifiable: golden samples {path} are unreadable: {exc}") from None
    if not inputs:
        raise EdgegenError(f"unverifiable: golden samples {path} hold no samples")
    samples = meta.get("samples") or []
    sizes = [str(s.get("size", "?")) if isinstance(s, dict) else "?" for s in samples]
    sizes += ["?"] * (len(inputs) - len(sizes))
    tolerance = meta.get("tolerance") or {}
    if not isinstance(tolerance, dict):
        raise EdgegenError(f"unverifiable: golden samples {path} have a malformed tolerance")
    return Golden(inputs, outputs, sizes[: len(inputs)], str(meta.get("precision", "?")), tolerance)


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


def verify_generator(gen: Generator, path: Path) -> VerifyReport:
    golden = load_golden(path)
    tolerance = {k: golden.tolerance.get(k) for k in TORCH_RELATIVE}
    report = VerifyReport(gen.path, golden.precision, gen.providers, dict(tolerance))
    if golden.tolerance.get("max_gt_psnr_drop") is not None:
        report.notes.append("max_gt_psnr_drop needs ground truth: not checked on the device")
    if all(v is None for v in tolerance.values()):
        raise EdgegenError(
            f"{path}: unverifiable, its golden samples carry no limit a device can check "
            f"({', '.join(TORCH_RELATIVE)})"
        )
    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for x, ref, size in zip(golden.inputs, golden.outputs, golden.sizes, strict=True):
        out = gen.infer(x)
        if out.shape != ref.shape:
            report.failures.append(f"{size}: output shape {out.shape}, torch {ref.shape}")
            continue
        if not np.isfinite(out).all():
            report.failures.append(f"{size}: inf/NaN in the output")
            continue
        groups.setdefault(size, []).append((out, ref))
    for size, pairs in groups.items():
        stats = error_stats([o for o, _ in pairs], [r for _, r in pairs])
        report.rows.append(
            VerifyRow(size, len(pairs), stats.max_lsb, stats.pct_over_1lsb, stats.psnr)
        )
        max_lsb, max_pct, min_psnr = (tolerance.get(k) for k in TORCH_RELATIVE)
        where = f"{report.precision} at {size}"
        report.failures += limit_failures(where, stats, max_lsb, max_pct, min_psnr)
    return report
