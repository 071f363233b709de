"""Runners: one small interface over everything that runs a model for edgegen's checks.

A runner takes an NCHW float32 batch in the model's value range (padded to its pad multiple)
and returns the model's raw NCHW output, and says what actually ran (:class:`RunnerInfo`):
the runtime and its version, the device asked for and the providers that ran it, the
precision. Comparison, verification, calibration ranking and benchmarks run models only
through runners, and compare their outputs elsewhere (pure numpy), as Polygraphy keeps its
runners apart from its comparator.

:data:`RUNTIMES` names the runtimes that run an exported ONNX file, each a module of this
package with a runner class whose constructor takes ``(path, device, **options)``: a new one is
one module and one line here. :class:`~edgegen.runners.pytorch.TorchRunner` runs the PyTorch
module itself (the reference), built from a module rather than a file.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from edgegen.runtime.errors import EdgegenError

from .base import Runner, RunnerInfo

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["RUNTIMES", "RUNTIME_OPTION", "Runner", "RunnerInfo", "onnx_runner"]

# runtime name -> "module:class" of the runner that runs an ONNX file on it
RUNTIMES: dict[str, str] = {
    "onnxruntime": "edgegen.runners.onnxrt:OnnxRuntimeRunner",
    "openvino": "edgegen.runners.openvino:OpenVINORunner",
    "onnx-reference": "edgegen.runners.onnxref:OnnxReferenceRunner",
    "web": "edgegen.runners.web:WebRunner",
    "arm64": "edgegen.runners.arm64:Arm64Runner",
}
# The keyword a runtime's ``NAME:VALUE`` sets (``openvino:bf16``: the inference precision;
# ``web:chromium``: where onnxruntime-web runs, node by default).
RUNTIME_OPTION: dict[str, str] = {"openvino": "precision", "web": "host"}


def onnx_runner(
    path: Path, runtime: str = "onnxruntime", device: str = "cpu", **options: Any
) -> Runner:
    """A runner for the ONNX file at ``path`` on ``runtime`` (``NAME`` or ``NAME:VALUE``, see
    :data:`RUNTIME_OPTION`) and ``device``."""
    name, _, value = runtime.strip().partition(":")
    target = RUNTIMES.get(name)
    if target is None:
        raise EdgegenError(f"unknown runtime {name!r}; choose from {', '.join(RUNTIMES)}")
    if value:
        if name not in RUNTIME_OPTION:
            raise EdgegenError(f"runtime {name} takes no option (got {runtime!r})")
        options = {**options, RUNTIME_OPTION[name]: value}
    module, _, cls_name = target.partition(":")
    cls = getattr(importlib.import_module(module), cls_name)
    runner = cls(path, device, **options)
    assert isinstance(runner, Runner)
    return runner
