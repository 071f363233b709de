"""The runner interface: ``infer(batch) -> array`` and what actually ran."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.files import check_file
from edgegen.runtime.manifest import check_manifest
from edgegen.runtime.onnx_metadata import read_metadata
from edgegen.runtime.spec import METADATA_KEY, ModelSpec


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


def file_spec(path: Path, *, manifest: bool = True) -> ModelSpec:
    """The spec of the ONNX file at ``path``, read without a session, after checking that it is a
    readable file (and, with ``manifest``, that it matches its manifest's sha256 where it has
    one): what a runner outside onnxruntime reads before it starts."""
    if path.is_dir():
        raise EdgegenError(f"model {path} is a folder, not an ONNX file")
    check_file(path, "model")
    if manifest:
        check_manifest(path)
    metadata = read_metadata(path)
    if not metadata or METADATA_KEY not in metadata:
        raise EdgegenError(f"model {path} has no edgegen spec: export it with edgegen")
    return ModelSpec.from_json(metadata[METADATA_KEY])
