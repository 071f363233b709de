"""The runner interface: ``infer(batch) -> array`` and what actually ran."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgegen.runtime.spec import ModelSpec


@dataclass(frozen=True)
class RunnerInfo:
    """What a runner ran on: reported beside every number it produced."""

    runtime: str  # onnxruntime, torch, ...
    version: str  # the runtime's version
    device: str  # what was asked for: cpu, cuda, tensorrt
    providers: list[str] = field(default_factory=list)  # what actually ran, in priority order
    precision: str = "fp32"  # the model's, from its spec


class Runner(ABC):
    """One model, ready to run on NCHW float32 batches in its value range.

    ``name`` is what reports call it (a file name); ``spec`` is the model's spec and ``path``
    the file or checkpoint it came from (None for a module built in memory).
    """

    name: str
    spec: ModelSpec
    path: Path | None

    @abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """The model's raw NCHW float32 output for an NCHW batch (sizes a multiple of the spec's
        pad multiple); nothing is clipped, cropped or converted."""

    @property
    @abstractmethod
    def info(self) -> RunnerInfo:
        """What this runner runs on."""

    @property
    def device(self) -> str:
        return self.info.device

    @property
    def providers(self) -> list[str]:
        return list(self.info.providers)
