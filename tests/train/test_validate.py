"""Validation reports the colour shift of the validated model beside its PSNR."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from edgegen.evaluation.samples import Sample
from edgegen.train.config import TrainConfig
from edgegen.train.trainer import train
from edgegen.train.validate import Validator, summarize

OFFSET = 3.0  # LSB


class AddsOffset(nn.Module):
    """A 'model' that lifts every channel by OFFSET 8-bit steps: a pure colour shift."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + OFFSET / 255.0


def sample(name: str, level: float) -> Sample:
    rng = np.random.default_rng(0)
    clean = (level + 0.05 * rng.random((64, 64, 3))).astype(np.float32)
    # The input differs from the photo by a checkerboard of +-0.5 LSB, which averages to zero
    # over every block (and keeps the input's PSNR finite).
    i, j = np.indices((64, 64))
    checker = (((i + j) % 2) * 2.0 - 1.0)[..., None] * (0.5 / 255.0)
    return Sample(name, "full", (clean + checker).astype(np.float32), clean)


def test_validation_reports_a_colour_shift_overall_and_in_dark_regions() -> None:
    # A mid-grey photo has no dark region; a dim one is dark throughout (luma < 0.25).
    validator = Validator([sample("mid", 0.4), sample("dim", 0.08)], scale=1)
    scores = validator.run(AddsOffset(), torch.device("cpu"))
    by_name = {s.name: s for s in scores}
    assert by_name["mid"].shift == pytest.approx(OFFSET, abs=1e-3)
    assert by_name["mid"].dark_shift == 0.0
    assert by_name["dim"].dark_shift == pytest.approx(OFFSET, abs=1e-3)
    summary = summarize(scores)
    assert summary["shift"] == pytest.approx(OFFSET, abs=1e-3)
    assert summary["dark_shift"] == pytest.approx(OFFSET, abs=1e-3)


def test_metrics_log_carries_the_shift(tmp_path) -> None:
    cfg = TrainConfig(arch="tiny", patch=32, batch=2, workers=0, steps=2, val_every=2,
                      out=str(tmp_path / "run"))  # fmt: skip
    lines: list[str] = []
    train(cfg, progress=False, log=lines.append)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        images = row["images"].values()
        assert row["shift"] == max(i["shift"] for i in images) > 0
        assert row["dark_shift"] == max(i["dark_shift"] for i in images)
    assert f"shift {rows[-1]['shift']:.2f} LSB" in lines[-1]
