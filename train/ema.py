"""An exponential moving average of the weights (Polyak averaging), the weights a run validates,
saves as its model and exports when ``--ema`` is on.

Restoration networks are commonly shipped from an EMA of their weights (BasicSR's
``params_ema``): the last step's weights carry that step's batch, and a small bias a model learns
(a colour shift of a fraction of an 8-bit step) moves from one checkpoint to the next by as much
as the bias itself. The average over the last ~1/(1-decay) steps holds still.

It is torch's :class:`~torch.optim.swa_utils.AveragedModel` with an averaging function whose
decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates (TensorFlow's
``ExponentialMovingAverage`` with ``num_updates``): a run from random weights does not keep them
in its average for thousands of steps. A fine-tune (``--init``) starts from trained weights,
which the average may hold from its first step: there the decay is ``decay`` throughout.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

Tensors = tuple[torch.Tensor, ...] | list[torch.Tensor]


def warmed_decay(decay: float, updates: int) -> float:
    """The decay of update number ``updates`` (counted from 0) of an average that warms up: the
    first copies the model (decay 0), the next take ``min(decay, (1 + n) / (10 + n))``."""
    return 0.0 if updates == 0 else min(decay, (1.0 + updates) / (10.0 + updates))


class WeightEMA:
    """The moving average of ``model``'s parameters and buffers; :meth:`update` after each
    optimiser step, :attr:`module` for validation and checkpoints."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool = True) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        # The update count lives here as well as in AveragedModel's ``n_averaged`` tensor: read
        # from that on a GPU, it would synchronise the device on every step.
        self._updates = 0
        self.averaged = AveragedModel(model, multi_avg_fn=self._average, use_buffers=True)
        self.averaged.eval().requires_grad_(False)
        if not warmup:
            # AveragedModel copies the model at its first update; the copy made here (of the
            # same weights) is the average's start instead, and every update averages.
            self.averaged.n_averaged.fill_(1)

    @property
    def module(self) -> nn.Module:
        return self.averaged.module  # type: ignore[no-any-return]

    @property
    def updates(self) -> int:
        """Optimiser steps averaged so far."""
        return self._updates

    def decay_now(self) -> float:
        """The decay of the next update."""
        return warmed_decay(self.decay, self._updates) if self.warmup else self.decay

    def update(self, model: nn.Module) -> None:
        self.averaged.update_parameters(model)
        self._updates += 1

    def load(self, weights: dict[str, torch.Tensor], updates: int) -> None:
        """Continue an average saved by an earlier run (its weights and update count)."""
        self.module.load_state_dict(weights)
        self.averaged.n_averaged.fill_(updates + (0 if self.warmup else 1))
        self._updates = updates

    @torch.no_grad()
    def _average(self, averaged: Tensors, current: Tensors, _n: torch.Tensor | int) -> None:
        # Called once per device and dtype group, before the count is incremented.
        if not averaged[0].is_floating_point():  # counters (batch norm's num_batches_tracked)
            for a, c in zip(averaged, current, strict=True):
                a.copy_(c)
            return
        torch._foreach_lerp_(averaged, current, 1.0 - self.decay_now())
