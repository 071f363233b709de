"""OpenVINO, reading the same ONNX file, through the runtime's own :class:`Generator`.

The session is the runtime's (:mod:`edgegen.runtime.openvino_session`), so that what compare,
bench and verify measure here is what an app gets from ``Generator(path, runtime="openvino")``.
``precision`` is OpenVINO's inference precision: ``f32`` (the default: exact to rounding),
``bf16`` or ``f16`` where the device computes in them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import RunnerInfo
from .onnxrt import GeneratorRunner


class OpenVINORunner(GeneratorRunner):
    """An ONNX file on OpenVINO: ``device`` cpu (or gpu where OpenVINO has one), ``precision``
    f32, bf16 or f16, ``threads`` its inference threads; onnxruntime's session options are not
    its own and are left out."""

    def __init__(
        self,
        path: Path,
        device: str = "cpu",
        *,
        name: str | None = None,
        precision: str = "f32",
        threads: int | None = None,
        **_onnxruntime_options: Any,
    ) -> None:
        self._precision = precision
        super().__init__(path, device, name, threads=threads, runtime=f"openvino:{precision}")

    @property
    def info(self) -> RunnerInfo:
        from edgegen.runtime.openvino_session import import_openvino

        version = str(import_openvino().__version__).split("-")[0]
        runtime = "openvino" if self._precision == "f32" else f"openvino:{self._precision}"
        return RunnerInfo(
            runtime, version, self._device, self.generator.providers, self.spec.precision
        )
