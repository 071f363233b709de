"""Static int8 quantization (QDQ) of an fp32 ONNX export, calibrated on real photos.

onnxruntime.quantization does the work: ``quant_pre_process`` (shape inference and graph clean-up,
which lets the quantizer see every tensor's shape and fuse what it can) and ``quantize_static``
in the QDQ format, whose QuantizeLinear/DequantizeLinear pairs every provider can read (CPU fuses
them into QLinearConv, TensorRT builds int8 engines from them). The model's ``metadata_props`` are
carried over, with the spec's precision set to ``int8``, and the file appears under its real name
only once it is complete.

Defaults, chosen by measurement (``benchmarks/int8_speed.py``, ``benchmarks/results/``): uint8
activations with int8 weights (U8S8), per-channel weight scales, MinMax calibration, and the
3-channel head and tail padded with zero channels so onnxruntime's symmetric int8 kernel takes
them too (:mod:`edgegen.export.int8_layout`). On a 2-core AMD EPYC (onnxruntime 1.32 CPU, 2
threads, the `small` denoiser at 256x256) fp32 took 49.2 ms, U8S8 16.7 ms (2.94x faster; 18.5
ms, 2.66x, without the padding) and S8S8 85.0 ms (0.58x: slower than fp32). With U8S8 the CPU
provider fused all 19 convolutions and all 10 residual Adds into QLinearConv and QLinearAdd; with
S8S8 only 10 convolutions got int8 kernels (the head conv and the conv before each block's ReLU
stayed fp32 between Dequantize/Quantize pairs) and no Add did. Both have the same accuracy (an
asymmetric int8 grid is the uint8 grid shifted by 128).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.files import atomic_write
from edgegen.runtime.spec import METADATA_KEY, ModelSpec

from .calib import CalibrationReader
from .int8_layout import pad_conv_channels

METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
QUANT_TYPES = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
MODES = ("static", "dynamic")

# Chosen by measurement (see the module docstring): U8S8 is the fastest on onnxruntime's CPU
# provider, S8S8 slower than fp32 there.
DEFAULT_METHOD = "minmax"
DEFAULT_ACTIVATION_TYPE = "uint8"
DEFAULT_WEIGHT_TYPE = "int8"

# Nodes kept in float whatever the settings, all on the global skip, where the image itself
# passes: the SR skip's fixed bicubic filter (edgegen.train.archs.upsample) and its pixel
# shuffle and padding, and the output Add (y = F(x) + skip). Quantized, the bicubic conv doubled
# the pixels off by more than 1 LSB (5.3% -> 9.4% on sr2) and, as a grouped conv that MLAS's int8
# kernels run poorly, took 18% of the int8 time; in float it takes 2% (benchmarks/sr_speed.py).
# Quantizing the skip's output and the Add's rounds the image twice more to a uint8 grid a little
# coarser than its own 8 bits: on sr2 that cost 0.22 dB of int8's 0.26 dB loss on the held-out
# photos (benchmarks/int8_skip.py), and a float Add at the output's resolution costs next to
# nothing.
FLOAT_NODE_PREFIXES = ("/skip_upsample/",)

DYNAMIC_REFUSAL = (
    "int8 mode 'dynamic' is not supported: onnxruntime's dynamic quantization quantizes only "
    "MatMul/Gemm weights and computes activation scales on every call, and these generators are "
    "convolutions, whose ConvInteger kernels run slowly or not at all on many providers, so it "
    "gives no speed-up and loses accuracy; use static QDQ quantization with calibration photos"
)


def check_int8_mode(mode: str) -> None:
    """Accept ``"static"``; refuse ``"dynamic"`` with the reason, and anything else, as one line."""
    if mode == "dynamic":
        raise EdgegenError(DYNAMIC_REFUSAL)
    if mode not in MODES:
        raise EdgegenError(f"unknown int8 mode {mode!r}; use 'static'")


def _choice(what: str, value: str, choices: dict[str, Any]) -> Any:
    if value not in choices:
        raise EdgegenError(f"unknown int8 {what} {value!r}; choose from {', '.join(choices)}")
    return choices[value]


def _load_fp32(path: Path) -> onnx.ModelProto:
    """Load and check the fp32 model, turning a missing or corrupt file into one clear line."""
    if not path.is_file():
        raise EdgegenError(f"fp32 model {path} does not exist")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # protobuf, checker and OS errors alike mean "not a usable model"
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise EdgegenError(f"{path} is not a readable ONNX model ({reason})") from None
    if not model.graph.input:
        raise EdgegenError(f"{path} is not a readable ONNX model (the graph has no inputs)")
    return model


def _check_calibration(
    calib: list[np.ndarray], model_input: onnx.ValueInfoProto, path: Path
) -> None:
    """Refuse inputs the model cannot take before calibration starts, rather than with
    onnxruntime's multi-line error halfway through it."""
    dims = model_input.type.tensor_type.shape.dim
    channels = dims[1].dim_value if len(dims) == 4 and dims[1].HasField("dim_value") else None
    for i, x in enumerate(calib):
        shape = getattr(x, "shape", None)
        ok = isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 4
        if not ok or (channels is not None and x.shape[1] != channels):
            got = f"{getattr(x, 'dtype', type(x).__name__)} {shape}"
            want = f"float32 (N, {channels if channels is not None else 'C'}, H, W)"
            raise EdgegenError(f"calibration input {i} is {got}; {path.name} takes {want}")


def _int8_metadata(model: onnx.ModelProto, path: Path) -> dict[str, str]:
    """The fp32 model's metadata_props, with the spec's precision changed to int8."""
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY in props:
        spec = ModelSpec.from_json(props[METADATA_KEY])
        if spec.precision != "fp32":
            raise EdgegenError(
                f"{path} holds a {spec.precision} model; "
                "int8 quantization starts from the fp32 export"
            )
        props[METADATA_KEY] = spec.replace(precision="int8").to_json()
    return props


class _RankOneAxis(logging.Filter):
    """onnxruntime's per-channel quantizer logs, to the root logger, one warning per 1-D weight
    (a LayerNorm's scale) that it quantizes per tensor instead: correct, and not the user's
    concern; one line per layer of a transformer."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is out-of-range for weight" not in record.getMessage()


@contextlib.contextmanager
def _calibration_errors() -> Iterator[None]:
    """onnxruntime's calibrator runs the graph on every calibration input: a graph that fails
    on one is a failed int8 export in one line, not onnxruntime's traceback."""
    quiet, root = _RankOneAxis(), logging.getLogger()
    root.addFilter(quiet)  # on the logger: onnxruntime logs there before any handler exists
    try:
        yield
    except EdgegenError:
        raise
    except Exception as exc:  # onnxruntime's Fail, InvalidArgument, RuntimeException, ...
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        raise EdgegenError(f"int8 calibration failed: {lines[0]}", exit_code=1) from None
    finally:
        root.removeFilter(quiet)


def quantize_int8(
    fp32_path: Path,
    out_path: Path,
    calib: list[np.ndarray],
    method: str = DEFAULT_METHOD,
    per_channel: bool = True,
    activation_type: str = DEFAULT_ACTIVATION_TYPE,
    weight_type: str = DEFAULT_WEIGHT_TYPE,
    progress: bool = True,
    nodes_to_exclude: list[str] | None = None,
    tensor_overrides: dict[str, list[dict[str, Any]]] | None = None,
    extra_options: dict[str, Any] | None = None,
    channel_pad: bool = True,
) -> dict[str, Any]:
    """Quantize ``fp32_path`` to static QDQ int8 at ``out_path``; returns the settings used.

    ``calib`` are the calibration inputs (see :func:`edgegen.export.calib.calibration_inputs`),
    fed under the model's input name. ``method`` is ``minmax``, ``entropy`` or ``percentile``;
    ``activation_type``/``weight_type`` are ``uint8`` or ``int8``; ``per_channel`` gives each
    output channel of a convolution its own weight scale (convolutions' channels differ widely in
    magnitude, and one scale per tensor wastes levels on the small ones). ``nodes_to_exclude``
    names nodes of the pre-processed graph to keep in fp32. ``tensor_overrides`` (onnxruntime's
    TensorQuantOverrides: tensor name -> ``[{"scale": ..., "zero_point": ...}]``) fixes those
    tensors' quantization instead of calibrating them (QAT's learned ranges use it);
    ``extra_options`` are further ``quantize_static`` extra options (e.g. ``CalibPercentile``).
    ``channel_pad`` pads the convolutions that onnxruntime's fastest int8 kernel would otherwise
    refuse (the 3-channel head and tail) with zero channels; the function is unchanged
    (:mod:`edgegen.export.int8_layout`).

    ``out_path`` is written to a temporary file beside it and renamed, so it is either absent (or
    the previous file) or complete; every temporary file is removed, on error too.
    Raises :class:`EdgegenError` for bad settings, an empty ``calib``, or an unreadable model.
    """
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    calibrate_method = _choice("calibration method", method, METHODS)
    act_qtype = _choice("activation type", activation_type, QUANT_TYPES)
    weight_qtype = _choice("weight type", weight_type, QUANT_TYPES)
    if not calib:
        raise EdgegenError("int8 quantization needs at least one calibration input")
    excluded = list(nodes_to_exclude or [])

    model = _load_fp32(fp32_path)
    metadata = _int8_metadata(model, fp32_path)
    input_name = model.graph.input[0].name
    _check_calibration(calib, model.graph.input[0], fp32_path)
    del model  # the pre-processed copy is what gets quantized

    # Intermediate models go to a private temporary folder (removed on any exit), not beside
    # out_path: only the final file is ever written there.
    with tempfile.TemporaryDirectory(prefix="edgegen-int8-") as tmp:
        pre_path = Path(tmp) / "preprocessed.onnx"
        quant_path = Path(tmp) / "int8.onnx"
        _pre_process(fp32_path, pre_path, Path(tmp))
        pre_graph = onnx.load(str(pre_path)).graph
        fixed_float = _float_nodes(pre_graph)
        _check_excluded(pre_graph, excluded)
        options = dict(extra_options or {})
        if tensor_overrides:
            _check_overrides(pre_graph, tensor_overrides)
            options["TensorQuantOverrides"] = tensor_overrides
        # The entropy and percentile calibrators print() their progress; keep stdout for the
        # caller's output (a CLI may print JSON there) and send it to stderr with the bar.
        with contextlib.redirect_stdout(sys.stderr), _calibration_errors():
            quantize_static(
                str(pre_path),
                str(quant_path),
                CalibrationReader(calib, input_name=input_name, progress=progress),
                quant_format=QuantFormat.QDQ,
                per_channel=per_channel,
                activation_type=act_qtype,
                weight_type=weight_qtype,
                nodes_to_exclude=[*excluded, *(n for n in fixed_float if n not in excluded)]
                or None,
                calibrate_method=calibrate_method,
                extra_options=options or None,
            )
        quantized = onnx.load(str(quant_path))
    padded = pad_conv_channels(quantized) if channel_pad else []
    if padded:
        onnx.checker.check_model(quantized)
    _write(out_path, quantized, metadata)
    return {
        "mode": "static",
        "format": "QDQ",
        "method": method,
        "per_channel": per_channel,
        "activation_type": activation_type,
        "weight_type": weight_type,
        "calibration_inputs": len(calib),
        "nodes_to_exclude": excluded,
        "float_nodes": fixed_float,
        "channel_pad": padded,
        **({"extra_options": _jsonable(extra_options)} if extra_options else {}),
        **({"tensor_overrides": len(tensor_overrides)} if tensor_overrides else {}),
        "onnxruntime": onnxruntime.__version__,
    }


def _float_nodes(graph: onnx.GraphProto) -> list[str]:
    """The nodes kept in float whatever the settings: those of the SR skip
    (:data:`FLOAT_NODE_PREFIXES`) and the Add that makes the graph's output, if one does."""
    outputs = {o.name for o in graph.output}
    return [
        n.name
        for n in graph.node
        if n.name.startswith(FLOAT_NODE_PREFIXES)
        or (n.op_type == "Add" and any(o in outputs for o in n.output))
    ]


def _check_excluded(graph: onnx.GraphProto, excluded: list[str]) -> None:
    # quantize_static ignores unknown names silently; a typo would go unnoticed.
    names = {node.name for node in graph.node}
    unknown = [n for n in excluded if n not in names]
    if unknown:
        raise EdgegenError(
            f"nodes to exclude not in the (pre-processed) model: {', '.join(unknown)}"
        )


def _check_overrides(graph: onnx.GraphProto, overrides: dict[str, Any]) -> None:
    tensors = {name for node in graph.node for name in (*node.input, *node.output)}
    unknown = sorted(set(overrides) - tensors)
    if unknown:
        raise EdgegenError(
            f"tensor overrides name tensors not in the model: {', '.join(unknown[:4])}"
        )


def _write(out_path: Path, quantized: onnx.ModelProto, metadata: dict[str, str]) -> None:
    """The quantized model under its real name, atomically, with the fp32 model's metadata."""
    # The quantizer may add keys of its own (pre-processing marks); keep them, and put back the
    # fp32 model's keys, the updated spec among them.
    props = {p.key: p.value for p in quantized.metadata_props}
    props.update(metadata)
    del quantized.metadata_props[:]
    for key, value in props.items():
        quantized.metadata_props.add(key=key, value=value)
    data = quantized.SerializeToString()

    def write(tmp_path: Path) -> None:
        tmp_path.write_bytes(data)

    atomic_write(out_path, write)


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v.item() if hasattr(v, "item") else v for k, v in options.items()}


def _pre_process(fp32_path: Path, pre_path: Path, scratch: Path) -> None:
    """quant_pre_process, with symbolic shape inference when it can finish.

    onnxruntime's symbolic shape inference gives up on some dynamic graphs (slices whose bounds
    depend on the input size, as in user models that crop after an upsample), raises, and
    leaves ``sym_shape_infer_temp.onnx`` in the working directory. It runs in a scratch
    directory, and on failure pre-processing is redone without it (ONNX shape inference still
    runs), which quantizes the same ops.
    """
    source, target = str(fp32_path.resolve()), str(pre_path.resolve())  # before the chdir
    cwd = os.getcwd()
    os.chdir(scratch)
    try:
        try:
            quant_pre_process(source, target)
        except Exception:
            quant_pre_process(source, target, skip_symbolic_shape=True)
    finally:
        os.chdir(cwd)
