"""onnx's reference evaluator (``onnx.reference``): every operator written out in numpy from the
ONNX specification, with no graph optimisation and no kernel of its own.

It is slow (seconds for a small crop) and independent of every runtime's kernels, which is what
makes it an arbiter: when onnxruntime and another runtime disagree on a file, this says what the
graph means. Use it on small inputs (``--sizes 37x53``). It needs onnx (``edgegen[train]``);
an operator it does not implement at the file's opset is a one-line error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgegen.runtime.errors import EdgegenError

from .base import Runner, RunnerInfo, file_spec


class OnnxReferenceRunner(Runner):
    """An ONNX file on ``onnx.reference.ReferenceEvaluator``, on the CPU only."""

    def __init__(
        self, path: Path, device: str = "cpu", *, name: str | None = None, **_options: Any
    ) -> None:
        if device not in ("cpu", "auto"):
            raise EdgegenError(f"onnx-reference runs on the CPU only, not {device!r}")
        self.path = Path(path)
        self.name = name or self.path.name
        self.spec = file_spec(self.path, manifest=False)
        try:
            import onnx
            from onnx.reference import ReferenceEvaluator
        except ImportError:
            raise EdgegenError(
                "the onnx-reference runtime needs onnx: pip install 'edgegen[train]'"
            ) from None
        self._version = onnx.__version__
        try:
            self._evaluator = ReferenceEvaluator(str(self.path))
        except Exception as exc:  # onnx raises RuntimeError, NotImplementedError, ...
            raise EdgegenError(
                f"onnx-reference cannot run {self.path.name}: {_first_line(exc)}"
            ) from None
        self._input = self._evaluator.input_names[0]

    def infer(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if self.spec.layout == "NHWC":
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        try:
            results: Any = self._evaluator.run(None, {self._input: x})
            out = np.asarray(results[0], dtype=np.float32)
        except Exception as exc:  # an operator that fails at this input
            raise EdgegenError(
                f"onnx-reference failed on {self.name} at a {tuple(x.shape)} input: "
                f"{_first_line(exc)}"
            ) from None
        if self.spec.layout == "NHWC":
            out = out.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(out)

    @property
    def info(self) -> RunnerInfo:
        return RunnerInfo(
            "onnx-reference", self._version, "cpu", ["ReferenceEvaluator"], self.spec.precision
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
