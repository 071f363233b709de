"""QAT's learned ranges onto the fp32 ONNX graph, and the int8 model that uses them.

:class:`edgegen.train.qat.QATGenerator` names each fake-quantized tensor after the conv that
produces it (``body.0.body.0``: its output after the ReLU) or the residual Add that consumes that
conv's output (``body.0.body.2.add``). The exported graph keeps the convs' weights under their
state_dict names (``body.0.body.0.weight``), so each name maps onto one ONNX tensor by following
the graph from that weight. For SR, the sub-pixel conv's DepthToSpace follows its ReLU
(``upsample.0.shuffle``). The output Add and the SR skip stay float (export keeps them so), so
no range names them. The learned scales and zero points
reach ``quantize_static`` as TensorQuantOverrides, which it uses instead of calibrating those
tensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgegen.runtime.errors import EdgegenError

FLOAT_RANGES = frozenset({"tail.add", "skip"})  # tensors export keeps in float


def tensor_names(model: onnx.ModelProto) -> dict[str, str]:
    """QAT range name -> ONNX tensor name, for an fp32 export of the residual generator."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    initializers = {i.name for i in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    mapping = {"input": model.graph.input[0].name}
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in initializers:
            continue
        weight = node.input[1]
        if not weight.endswith(".weight"):
            continue
        conv = weight[: -len(".weight")]
        out = node.output[0]
        users = consumers.get(out, [])
        if len(users) == 1 and users[0].op_type == "Relu":
            out = users[0].output[0]  # the quantizer drops the ReLU and quantizes here
            users = consumers.get(out, [])
        mapping[conv] = out
        if len(users) == 1 and users[0].op_type == "DepthToSpace":
            mapping[f"{conv}.shuffle"] = users[0].output[0]
        adds = [u for u in users if u.op_type == "Add"]
        if len(adds) == 1 and adds[0].output[0] not in outputs:  # the output Add stays float
            mapping[f"{conv}.add"] = adds[0].output[0]
    return mapping


def overrides(
    model: onnx.ModelProto, qparams: Mapping[str, Sequence[float]]
) -> dict[str, list[dict[str, Any]]]:
    """TensorQuantOverrides (uint8 scale and zero point) for every learned range."""
    names = tensor_names(model)
    # Ranges that QAT runs recorded before the output Add and the SR skip stayed float.
    qparams = {k: v for k, v in qparams.items() if k not in FLOAT_RANGES}
    missing = sorted(set(qparams) - set(names))
    if missing:
        raise EdgegenError(
            "the QAT ranges do not match this model's graph (no tensor for "
            + ", ".join(missing[:4])
            + ("..." if len(missing) > 4 else "")
            + ")"
        )
    result: dict[str, list[dict[str, Any]]] = {}
    for key, (scale, zero_point) in qparams.items():
        result[names[key]] = [
            {"scale": np.array(scale, np.float32), "zero_point": np.array(zero_point, np.uint8)}
        ]
    return result


def qparams_from_record(record: dict[str, Any], where: Path | str) -> dict[str, tuple[float, int]]:
    """The scales and zero points a QAT checkpoint recorded, checked."""
    try:
        raw = record["qparams"]
        qparams = {str(k): (float(v[0]), int(v[1])) for k, v in raw.items()}
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        raise EdgegenError(f"{where}: the checkpoint's QAT record has no usable ranges") from None
    bad = [k for k, (scale, zp) in qparams.items() if not (scale > 0 and 0 <= zp <= 255)]
    if not qparams or bad:
        raise EdgegenError(f"{where}: the checkpoint's QAT record has unusable ranges {bad[:3]}")
    return qparams


def run_qat(
    module: Any,
    spec: Any,
    photos_source: str = "bundled",
    calib_count: int = 32,
    steps: int = 300,
    progress: bool = True,
    patch: int = 64,
    batch: int = 16,
    loss: str = "l1",
    start: dict[str, tuple[float, int]] | None = None,
) -> Any:
    """Fine-tune ``module`` with int8 fake quantization on training photos (``photos_source``:
    'bundled' or a folder, as for calibration); returns a :class:`~edgegen.train.qat.QATResult`.
    The starting ranges are MinMax over the same calibration crops int8 export uses, or
    ``start``'s (range name -> scale, zero point)."""
    from edgegen.evaluation.degrade import degradation_from_spec
    from edgegen.train.qat import check_supported, finetune, patch_batches

    from .calib import _load_photos, _stderr, calibration_inputs

    check_supported(module)
    calib = calibration_inputs(spec, photos_source, calib_count)
    photos = [p for p in _load_photos(photos_source, spec.in_channels, _stderr)]
    usable = [p for p in photos if min(p.height, p.width) >= patch]
    if not usable:
        raise EdgegenError(f"QAT needs training photos of at least {patch}x{patch} pixels")
    batches = patch_batches(
        usable, degradation_from_spec(spec.degradation), patch, batch, scale=spec.scale
    )
    return finetune(module, calib, batches, steps=steps, loss=loss, progress=progress, init=start)


def quantize_with_qat(
    module: Any,
    result: Any,
    spec: Any,
    opset: int | None,
    out_path: Path,
    calib: list[np.ndarray],
    per_channel: bool,
    scratch: Path,
    channel_pad: bool = True,
) -> dict[str, Any]:
    """The int8 QDQ model of QAT's fine-tuned weights with its learned ranges at ``out_path``."""
    import copy

    from .int8 import quantize_int8
    from .onnx_export import export_fp32

    tuned = copy.deepcopy(module)
    tuned.load_state_dict(result.state_dict)
    fp32_model, _ = export_fp32(tuned, spec, opset)
    fp32_path = scratch / "qat.fp32.onnx"
    onnx.save(fp32_model, str(fp32_path))
    settings = quantize_int8(
        fp32_path,
        out_path,
        calib,
        per_channel=per_channel,
        progress=False,
        tensor_overrides=overrides(fp32_model, result.qparams),
        channel_pad=channel_pad,
    )
    settings["qat"] = result.record()
    return settings


def start_from(fp32_path: Path, qdq_params: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """QAT's starting scales and zero points from a calibrated QDQ model's (by tensor name)."""
    names = tensor_names(onnx.load(str(fp32_path)))
    start = {}
    for key, tensor in names.items():
        if tensor in qdq_params:
            param = qdq_params[tensor][0]
            start[key] = (float(param["scale"]), int(param["zero_point"]))
    return start
