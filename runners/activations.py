"""An ONNX model with every float tensor exposed, for ``edgegen compare --per-layer``.

onnxruntime's ``qdq_loss_debug.modify_model_output_intermediate_tensors`` adds every tensor of
the graph as an output (imports onnx); the augmented copy then runs on the CPU with graph
optimisations off, so that no tensor is fused away or renamed (an int8 model's QDQ pairs then
run as float arithmetic, which onnxruntime's fused int8 kernels match to within rounding).
:meth:`ActivationRunner.infer` returns the tensors of one batch by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.session import create_session

GRAPH_INPUT = "(input)"  # the op shown for a graph input
_FLOAT_ELEM_TYPES = {1: np.float32, 10: np.float16}  # onnx.TensorProto.FLOAT, FLOAT16
_SAVED_SUFFIX = "_ReshapedSavedOutput"  # what qdq_loss_debug appends to an exposed tensor


@dataclass(frozen=True)
class TensorNode:
    """A float tensor of a graph and the node that makes it (``op`` :data:`GRAPH_INPUT` for a
    graph input); ``inputs``: that node's inputs that are not initializers."""

    name: str
    op: str
    node: str = ""
    inputs: tuple[str, ...] = ()


def qdq_debug() -> Any:
    """onnxruntime's qdq_loss_debug, which imports onnx: one line naming it when it is missing."""
    try:
        from onnxruntime.quantization import qdq_loss_debug
    except ModuleNotFoundError as exc:
        package = (exc.name or "onnx").split(".")[0]
        raise EdgegenError(
            f"edgegen compare --per-layer needs the {package} package, which is not "
            f"installed: pip install {package}"
        ) from None
    return qdq_loss_debug


def load_graph(path: Path) -> Any:
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError ... for a file it cannot parse
        raise EdgegenError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None


def graph_tensors(model: Any) -> list[TensorNode]:
    """The float tensors of an ONNX model in graph order: its inputs, then every node's outputs
    (exported graphs are topologically sorted, as ONNX requires)."""
    inits = {i.name for i in model.graph.initializer}
    tensors = [
        TensorNode(i.name, GRAPH_INPUT)
        for i in model.graph.input
        if i.name not in inits and i.type.tensor_type.elem_type in _FLOAT_ELEM_TYPES
    ]
    for node in model.graph.node:
        inputs = tuple(i for i in node.input if i and i not in inits)
        tensors += [TensorNode(o, node.op_type, node.name, inputs) for o in node.output if o]
    return tensors


class ActivationRunner:
    """An ONNX model whose every float tensor is an output, run on the CPU with graph
    optimisations off; ``infer`` returns them by name, float32 or float16. ``augmented`` is
    where the augmented copy is written (a scratch folder's file)."""

    def __init__(self, path: Path, augmented: Path) -> None:
        debug = qdq_debug()
        self.path = path
        self.model = load_graph(path)
        self.tensors = graph_tensors(self.model)
        first = self.model.graph.input[0]
        self.input_name: str = first.name
        self.input_dtype = _FLOAT_ELEM_TYPES.get(first.type.tensor_type.elem_type, np.float32)
        try:
            debug.modify_model_output_intermediate_tensors(str(path), str(augmented))
        except Exception as exc:  # shape inference or saving failed on this graph
            raise EdgegenError(f"{path}: cannot expose its intermediate tensors: {exc}") from None
        # Optimisations would fuse nodes and rename or drop the tensors being compared.
        self._session = create_session(augmented, optimization="disabled")
        self._names = [o.name for o in self._session.get_outputs()]

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        feed = {self.input_name: np.ascontiguousarray(batch, dtype=self.input_dtype)}
        values = self._session.run(None, feed)
        return {
            name[: -len(_SAVED_SUFFIX)]: np.asarray(value)
            for name, value in zip(self._names, values, strict=True)
            if name.endswith(_SAVED_SUFFIX)
        }

    @property
    def outputs(self) -> list[str]:
        """The model's own graph outputs."""
        return [o.name for o in self.model.graph.output]

    def names(self) -> set[str]:
        return {t.name for t in self.tensors}

    def ops(self) -> dict[str, str]:
        return {t.name: t.op for t in self.tensors}
