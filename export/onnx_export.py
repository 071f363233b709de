"""fp32 ONNX export: dynamic batch/height/width, checked, shape-inferred, slimmed, spec attached."""

from __future__ import annotations

import io
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.spec import METADATA_KEY, ModelSpec

INPUT_NAME = "input"
OUTPUT_NAME = "output"
# Opset 17 runs on every current onnxruntime (CPU, CUDA, TensorRT, mobile builds) and has all
# that these generators need (Resize cubic, DepthToSpace, InstanceNormalization, Pad reflect).
DEFAULT_OPSET = 17
EXPORT_SIZE = 64  # the trace input's height and width; verification uses other sizes on purpose
_DYNAMIC = {0: "batch", 2: "height", 3: "width"}


SLIM_TOLERANCE = 1e-6  # onnxslim may reorder float sums: equal up to rounding, not bitwise


def export_fp32(
    module: nn.Module, spec: ModelSpec, opset: int = DEFAULT_OPSET
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Trace ``module`` to ONNX; check it, infer shapes, slim it and attach the spec.

    Returns the model and what the clean-up did (for the manifest).
    """
    if opset < 13:
        raise EdgegenError(f"--opset {opset} is too old: edgegen exports opset 13 or newer")
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise EdgegenError(
            f"--opset {opset} is newer than onnx {onnx.__version__} knows ({newest})"
        )
    module = module.eval().float().cpu()
    dummy = torch.rand(1, spec.in_channels, EXPORT_SIZE, EXPORT_SIZE)
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter (dynamo=False) is deprecated but still the one that gives
        # plain, portable graphs for conv nets with dynamic spatial axes.
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module,
                (dummy,),
                buf,  # type: ignore[arg-type]  # the TorchScript exporter writes to file objects
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: _DYNAMIC, OUTPUT_NAME: _DYNAMIC},
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        except Exception as exc:  # the exporter raises many types; all mean "cannot export"
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise EdgegenError(f"torch.onnx.export failed at opset {opset}: {message}") from None
    model = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(model)
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    model, slim_info = slim(model, spec)
    set_spec(model, spec.replace(precision="fp32"))
    onnx.checker.check_model(model)
    return model, slim_info


def slim(model: onnx.ModelProto, spec: ModelSpec) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """onnxslim's clean-up, kept only if it computes what the original does (to float rounding).

    Checked on an odd-sized random input (rounded up to the pad multiple) on onnxruntime; the
    result says whether it was kept.
    """
    import onnxslim

    slimmed = onnxslim.slim(model)
    if not isinstance(slimmed, onnx.ModelProto):  # pragma: no cover - onnxslim API contract
        return model, {"tool": "onnxslim", "applied": False, "reason": "no model returned"}
    pm = spec.pad_multiple
    h, w = -(-29 // pm) * pm, -(-41 // pm) * pm
    x = np.random.default_rng(0).random((1, spec.in_channels, h, w), dtype=np.float32)
    before, after = run_onnx(model, x, spec), run_onnx(slimmed, x, spec)
    same_shape = before.shape == after.shape
    diff = float(np.abs(before - after).max()) if same_shape else float("inf")
    info = {
        "tool": f"onnxslim {onnxslim.__version__}",
        "nodes_before": len(model.graph.node),
        "nodes_after": len(slimmed.graph.node),
        "max_abs_diff": diff,
        "applied": diff <= SLIM_TOLERANCE,
    }
    return (slimmed if info["applied"] else model), info


def run_onnx(model: onnx.ModelProto, x: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Run a model once on onnxruntime's CPU provider (a runner, on a scratch copy of the model
    with ``spec`` attached)."""
    from edgegen.runners import onnx_runner

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    set_spec(copy, spec)
    with tempfile.TemporaryDirectory(prefix="edgegen-slim-") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(copy, str(path))
        return onnx_runner(path, "onnxruntime", "cpu").infer(x)


def set_spec(model: onnx.ModelProto, spec: ModelSpec) -> None:
    for prop in list(model.metadata_props):
        if prop.key == METADATA_KEY:
            model.metadata_props.remove(prop)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, spec.to_json()


def get_spec(model: onnx.ModelProto) -> ModelSpec | None:
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return ModelSpec.from_json(prop.value)
    return None
