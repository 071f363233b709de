"""onnxruntime, on any provider, through the runtime's own :class:`Generator`.

The runner measures what an application that embeds the runtime gets: the same session, the
same provider defaults (IO binding and the CUDA options that follow the model's precision), the
same checks of the file (its spec, its inputs and outputs, its manifest's sha256).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgegen.runtime.generator import Generator

from .base import Runner, RunnerInfo


class GeneratorRunner(Runner):
    """A runner over a runtime :class:`Generator` (untiled): the batch goes in as the runners'
    NCHW and is transposed for an NHWC model, as an app's would be."""

    def __init__(self, path: Path, device: str, name: str | None, **generator_options: Any):
        self.path = Path(path)
        self.name = name or self.path.name
        self._device = device
        self.generator = Generator(self.path, device=device, tile=0, **generator_options)
        self.spec = self.generator.spec

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if self.spec.layout == "NHWC":
            out = self.generator.infer(np.ascontiguousarray(batch.transpose(0, 2, 3, 1)))
            return np.ascontiguousarray(out.transpose(0, 3, 1, 2))
        return self.generator.infer(batch)


class OnnxRuntimeRunner(GeneratorRunner):
    """An ONNX file on onnxruntime: ``device`` cpu, cuda, tensorrt or auto; ``options`` are the
    Generator's session options (``threads``, ``io_binding``, ``spinning``, ...)."""

    def __init__(self, path: Path, device: str = "cpu", *, name: str | None = None, **options: Any):
        super().__init__(path, device, name, **options)

    @property
    def info(self) -> RunnerInfo:
        import onnxruntime as ort

        return RunnerInfo(
            "onnxruntime",
            ort.__version__,
            self._device,
            self.generator.providers,
            self.spec.precision,
        )
