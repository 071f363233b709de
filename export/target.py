"""Accuracy targets for ``--precision auto``: parsing ``psnr-drop<=0.1`` and checking a measure.

A target is one or more conditions joined by commas, each ``METRIC<=NUMBER`` or
``METRIC>=NUMBER``. Every metric compares a candidate's outputs with the fp32 model's on the same
degraded photos, or (``psnr-drop``, ``gt-psnr``) with the clean ground truth:

======================  ====  ==================================================================
metric                  op    meaning
======================  ====  ==================================================================
``psnr-drop``           <=    fp32's PSNR against the ground truth minus the candidate's, in dB
``gt-psnr``             >=    the candidate's PSNR against the ground truth, in dB
``min-psnr``            >=    PSNR of the candidate's output against fp32's, in dB
``max-lsb``             <=    largest difference from fp32's output, in 8-bit steps
``pct-over-1lsb``       <=    share of output values (in %) more than 1 LSB from fp32's
======================  ====  ==================================================================

PSNRs against the ground truth are the mean over the photos (as training's validation reports
them); the comparisons with fp32 are pooled over every output value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from edgegen.runtime.errors import EdgegenError

# metric -> (operator, field of Measure, unit)
METRICS: dict[str, tuple[str, str, str]] = {
    "psnr-drop": ("<=", "psnr_drop", "dB"),
    "gt-psnr": (">=", "gt_psnr", "dB"),
    "min-psnr": (">=", "psnr_vs_fp32", "dB"),
    "max-lsb": ("<=", "max_lsb", "LSB"),
    "pct-over-1lsb": ("<=", "pct_over_1lsb", "%"),
}
_CONDITION = re.compile(r"^\s*([a-z0-9-]+)\s*(<=|>=)\s*([-+0-9.eE]+)\s*$")
_FORMS = ", ".join(f"{name}{op}N" for name, (op, _, _) in METRICS.items())


@dataclass(frozen=True)
class Condition:
    metric: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"


@dataclass(frozen=True)
class Measure:
    """One candidate's quality on a set of photos, against fp32 and the ground truth."""

    gt_psnr: float  # mean over photos, dB
    fp32_gt_psnr: float
    psnr_vs_fp32: float  # pooled, dB
    max_lsb: float
    pct_over_1lsb: float

    @property
    def psnr_drop(self) -> float:
        return self.fp32_gt_psnr - self.gt_psnr

    def to_dict(self) -> dict[str, float]:
        return {
            "gt_psnr": self.gt_psnr,
            "fp32_gt_psnr": self.fp32_gt_psnr,
            "psnr_drop": self.psnr_drop,
            "psnr_vs_fp32": self.psnr_vs_fp32,
            "max_lsb": self.max_lsb,
            "pct_over_1lsb": self.pct_over_1lsb,
        }

    def brief(self) -> str:
        return (
            f"drop {self.psnr_drop:+.3f} dB (GT {self.gt_psnr:.2f} vs fp32 "
            f"{self.fp32_gt_psnr:.2f}), {self.psnr_vs_fp32:.2f} dB vs fp32, "
            f"max {self.max_lsb:.2f} LSB"
        )


@dataclass(frozen=True)
class Target:
    conditions: tuple[Condition, ...]

    def __str__(self) -> str:
        return ",".join(str(c) for c in self.conditions)

    def failures(self, measure: Measure) -> list[str]:
        """One message per condition the measure breaks (empty: the target is met)."""
        broken = []
        for cond in self.conditions:
            _, field, unit = METRICS[cond.metric]
            got = float(getattr(measure, field))
            ok = got <= cond.value if cond.op == "<=" else got >= cond.value
            if not ok or math.isnan(got):
                broken.append(f"{cond.metric} {got:.4g} {unit} (target {cond})")
        return broken

    def met(self, measure: Measure) -> bool:
        return not self.failures(measure)

    def needs_ground_truth(self) -> bool:
        return any(c.metric in ("psnr-drop", "gt-psnr") for c in self.conditions)


def parse_target(text: str) -> Target:
    """``"psnr-drop<=0.1,max-lsb<=8"`` -> :class:`Target`; a bad spec is one EdgegenError line."""
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise EdgegenError(f"empty --target {text!r}; use one or more of {_FORMS}")
    conditions = []
    for part in parts:
        match = _CONDITION.match(part)
        if not match:
            raise EdgegenError(f"bad --target condition {part.strip()!r}; use {_FORMS}")
        metric, op, number = match.groups()
        if metric not in METRICS:
            raise EdgegenError(
                f"unknown --target metric {metric!r}; choose from {', '.join(METRICS)}"
            )
        want = METRICS[metric][0]
        if op != want:
            raise EdgegenError(f"--target {metric} takes {want} (e.g. {metric}{want}N), not {op}")
        try:
            value = float(number)
        except ValueError:
            raise EdgegenError(f"bad number {number!r} in --target {part.strip()!r}") from None
        if not math.isfinite(value):
            raise EdgegenError(f"--target {part.strip()!r} needs a finite number")
        if metric in ("psnr-drop", "max-lsb", "pct-over-1lsb") and value < 0:
            raise EdgegenError(f"--target {metric} must be >= 0, got {value:g}")
        conditions.append(Condition(metric, op, value))
    return Target(tuple(conditions))
