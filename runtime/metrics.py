"""Error between an output and its reference, as a person sees it: in 8-bit steps (LSB) and dB.

Pure numpy, shared by export's verification, the device check against golden samples and
comparisons; images are floats in [0, 1], so 1 LSB is 1/255.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PSNR_CAP = 150.0  # identical outputs have infinite PSNR; JSON cannot hold inf


class Verdict:
    """A check's result object: truthy when nothing failed (``failures`` names what did)."""

    failures: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures

    def __bool__(self) -> bool:
        return self.passed


@dataclass(frozen=True)
class ErrorStats:
    max_lsb: float  # largest absolute difference, in 8-bit steps
    pct_over_1lsb: float  # share of values (in %) off by more than 1 LSB
    psnr: float  # dB, capped at PSNR_CAP


def psnr_from_mse(mse: float) -> float:
    return PSNR_CAP if mse <= 0 else min(PSNR_CAP, 10 * math.log10(1.0 / mse))


def psnr(reference: np.ndarray, image: np.ndarray) -> float:
    diff = reference.astype(np.float64) - image.astype(np.float64)
    return psnr_from_mse(float(np.mean(diff**2)))


def error_stats(outputs: Sequence[np.ndarray], references: Sequence[np.ndarray]) -> ErrorStats:
    """Pooled over every value of every (output, reference) pair."""
    diffs = np.concatenate(
        [np.abs(o - r).ravel() for o, r in zip(outputs, references, strict=True)]
    )
    return ErrorStats(
        max_lsb=float(diffs.max()) * 255.0,
        pct_over_1lsb=float((diffs * 255.0 > 1.0).mean()) * 100.0,
        psnr=psnr_from_mse(float(np.mean(diffs.astype(np.float64) ** 2))),
    )


def limit_failures(
    where: str,
    stats: ErrorStats,
    max_lsb: float | None = None,
    max_pct_over_1lsb: float | None = None,
    min_psnr: float | None = None,
) -> list[str]:
    """One message per broken limit (None: not checked)."""
    failures = []
    if max_lsb is not None and stats.max_lsb > max_lsb:
        failures.append(f"{where}: max error {stats.max_lsb:.4f} LSB > {max_lsb} LSB")
    if max_pct_over_1lsb is not None and stats.pct_over_1lsb > max_pct_over_1lsb:
        failures.append(
            f"{where}: {stats.pct_over_1lsb:.3f}% of values off by > 1 LSB > {max_pct_over_1lsb}%"
        )
    if min_psnr is not None and stats.psnr < min_psnr:
        failures.append(f"{where}: PSNR vs torch {stats.psnr:.2f} dB < {min_psnr} dB")
    return failures
