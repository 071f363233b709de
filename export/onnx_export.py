"""fp32 ONNX export: dynamic batch/height/width, checked, shape-inferred, slimmed, spec attached."""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from collections.abc import Iterator
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
MAX_SIDE = 1 << 16  # the largest height or width the dynamo graph is exported for


SLIM_TOLERANCE = 1e-6  # onnxslim may reorder float sums: equal up to rounding, not bitwise
# auto: the dynamo exporter (torch.export keeps sizes symbolic through the shape arithmetic of
# window attention), the TorchScript trace where dynamo cannot export or its graph disagrees
# with the module at the probe sizes. The trace records shapes computed from the input size as
# constants: such a graph is right at the trace size only, which verification then shows.
EXPORTERS = ("auto", "dynamo", "trace")
# Sizes (rounded up to the pad multiple) at which an exported graph must agree with the module
# before export takes it: neither is the trace size, one is odd.
PROBE_SIZES = ((29, 41), (48, 80))
OWN_ARCH = "residual_generator"  # edgegen's own architecture (train.archs.ResidualGenerator)
PROBE_TOLERANCE = 1e-3  # a graph that is wrong differs by far more; verification is the judge


class ImageOnly(nn.Module):
    """The user's module called with the image alone: a ``forward(x, alpha=1.0)`` keeps its
    defaults as constants instead of growing graph inputs."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)  # type: ignore[no-any-return]


def probe_module(module: nn.Module, spec: ModelSpec) -> None:
    """Run the module once on a small input: its output must be the image ``spec`` promises.

    Raises one line (exit 2) naming what it returned instead.
    """
    pm = spec.pad_multiple
    h, w = round_up(EXPORT_SIZE, pm), round_up(EXPORT_SIZE + 16, pm)
    x = torch.rand(1, spec.in_channels, h, w)
    try:
        with torch.no_grad():
            y = module(x)
    except EdgegenError:
        raise
    except Exception as exc:  # whatever the user's forward raises
        raise EdgegenError(
            f"the module fails on a 1x{spec.in_channels}x{h}x{w} input: {first_line(exc)}"
        ) from None
    want = (1, spec.out_channels, h * spec.scale, w * spec.scale)
    if not isinstance(y, torch.Tensor):
        raise EdgegenError(
            f"the module's output is not an image: it returns {type(y).__name__}, not a tensor "
            f"of shape {want}; wrap it to return the image tensor alone"
        )
    if tuple(y.shape) != want or not y.is_floating_point():
        raise EdgegenError(
            f"the module's output is not the image the spec promises: {tuple(y.shape)} "
            f"{str(y.dtype).replace('torch.', '')} for a {h}x{w} input, expected {want} "
            f"(task {spec.task}, scale {spec.scale}, {spec.out_channels} channel(s))"
        )


def _extra_parameters(module: nn.Module) -> bool:
    import inspect

    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):  # a builtin or C-extension forward: call it as it is
        return False
    return len(params) > 1


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def export_fp32(
    module: nn.Module, spec: ModelSpec, opset: int = DEFAULT_OPSET, exporter: str = "trace"
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Export ``module`` to ONNX with ``exporter`` (:data:`EXPORTERS`); check it, infer shapes,
    slim it and attach the spec.

    Returns the model and what the export did (for the manifest): the exporter that ran (and
    why dynamo did not, under auto) and onnxslim's result.
    """
    if opset < 13:
        raise EdgegenError(f"--opset {opset} is too old: edgegen exports opset 13 or newer")
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise EdgegenError(
            f"--opset {opset} is newer than onnx {onnx.__version__} knows ({newest})"
        )
    if exporter not in EXPORTERS:
        raise EdgegenError(f"unknown exporter {exporter!r}; choose from {', '.join(EXPORTERS)}")
    module = module.eval().float().cpu()
    # Only a forward that takes more than the image is wrapped: the trace names nodes after the
    # module tree, and QAT and the per-layer tools find layers by those names.
    wrapped = ImageOnly(module).eval() if _extra_parameters(module) else module
    probe_module(wrapped, spec)
    info: dict[str, Any] = {}
    model = None
    if exporter == "auto" and spec.arch == OWN_ARCH:
        # edgegen's own generators are convolutions whose trace holds at every size (verified
        # below as any graph is), and QAT maps their layers by the trace's node names.
        exporter = "trace"
        info["why"] = "edgegen's own architecture: the trace"
    if exporter in ("auto", "dynamo"):
        try:
            model = _finish(_dynamo(wrapped, spec, opset), spec)
            if exporter == "auto":
                _agrees(model, wrapped, spec)
            info["exporter"] = "dynamo"
        except EdgegenError as exc:
            if exporter == "dynamo":
                raise
            model, info["dynamo_failed"] = None, str(exc)
    if model is None:
        model = _finish(_trace(wrapped, spec, opset), spec)
        info["exporter"] = "trace"
    model, info["slim"] = slim(model, spec)
    set_spec(model, spec.replace(precision="fp32"))
    onnx.checker.check_model(model)
    return model, info


def _trace(module: nn.Module, spec: ModelSpec, opset: int) -> onnx.ModelProto:
    dummy = torch.rand(1, spec.in_channels, *(round_up(EXPORT_SIZE, spec.pad_multiple),) * 2)
    buf = io.BytesIO()
    with torch.no_grad(), _quiet():
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
            raise EdgegenError(
                f"torch.onnx.export (trace) failed at opset {opset}: {first_line(exc)}"
            ) from None
    return onnx.load_from_string(buf.getvalue())


def _dynamo(module: nn.Module, spec: ModelSpec, opset: int) -> onnx.ModelProto:
    """torch.export with symbolic batch, height and width (multiples of the pad multiple)."""
    from torch.export import Dim

    pm = spec.pad_multiple
    # Not the trace size, nor square: a network that compares its input size with the one it
    # was built for (window attention caches a mask for it) must take its general path here.
    size = round_up(EXPORT_SIZE + 8, pm)
    dummy = torch.rand(2, spec.in_channels, size, size + pm * max(1, 16 // pm))
    height = Dim("height", min=1, max=MAX_SIDE // pm)
    width = Dim("width", min=1, max=MAX_SIDE // pm)
    dims = {0: Dim("batch", min=1, max=1024), 2: height * pm, 3: width * pm}
    if pm == 1:
        dims.update({2: height, 3: width})
    with torch.no_grad(), _quiet():
        try:
            program = torch.onnx.export(
                module,
                (dummy,),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=(dims,),
                opset_version=max(opset, 18),  # dynamo's lowest; converted down below
                dynamo=True,
                optimize=True,
                verbose=False,
            )
            if program is None:  # pragma: no cover - the dynamo exporter returns a program
                raise EdgegenError("no program returned")
            model = program.model_proto
        except EdgegenError:
            raise
        except Exception as exc:  # torch.export's and onnxscript's many error types
            raise EdgegenError(f"torch.onnx.export (dynamo) failed: {first_line(exc)}") from None
    if _opset_of(model) != opset:
        try:
            model = onnx.version_converter.convert_version(model, opset)
        except Exception as exc:  # the converter raises RuntimeError and ValueError alike
            raise EdgegenError(
                f"the dynamo graph does not convert to opset {opset}: {first_line(exc)}"
            ) from None
    return model


def _opset_of(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _finish(model: onnx.ModelProto, spec: ModelSpec) -> onnx.ModelProto:
    """One image in, one image out, concrete channel counts; checked and shape-inferred."""
    inputs = [
        i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}
    ]
    if len(inputs) != 1 or len(model.graph.output) != 1:
        names = ", ".join(i.name for i in inputs)
        raise EdgegenError(
            f"the exported graph has inputs {names} and {len(model.graph.output)} output(s); "
            "edgegen exports networks of one image input and one image output"
        )
    for value, channels in (
        (inputs[0], spec.in_channels),
        (model.graph.output[0], spec.out_channels),
    ):
        dims = value.type.tensor_type.shape.dim
        if len(dims) != 4:
            raise EdgegenError(f"the exported graph's {value.name} has rank {len(dims)}, not 4")
        # The runtime checks channel counts against the spec: an exporter may leave the output's
        # as a symbolic name ("Sliceoutput_dim_1") where the value is known.
        dims[1].Clear()
        dims[1].dim_value = channels
        dims[0].Clear()
        dims[0].dim_param = "batch"
    for k, name in ((2, "height"), (3, "width")):
        dim = inputs[0].type.tensor_type.shape.dim[k]
        dim.Clear()
        dim.dim_param = name
    try:
        onnx.checker.check_model(model)
        return onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as exc:  # onnx's checker and inference errors
        raise EdgegenError(f"the exported graph is not valid ONNX: {first_line(exc)}") from None


def _agrees(model: onnx.ModelProto, module: nn.Module, spec: ModelSpec) -> None:
    """The graph computes what the module does at :data:`PROBE_SIZES` (batch 2), else raise."""
    pm = spec.pad_multiple
    for h, w in PROBE_SIZES:
        h, w = round_up(h, pm), round_up(w, pm)
        x = np.random.default_rng(h).random((2, spec.in_channels, h, w), dtype=np.float32)
        try:
            got = run_onnx(model, x, spec)
        except EdgegenError as exc:
            raise EdgegenError(f"its graph fails at 2x{h}x{w}: {exc}") from None
        with torch.no_grad():
            want = module(torch.from_numpy(x.copy())).numpy()
        if got.shape != want.shape or float(np.abs(got - want).max()) > PROBE_TOLERANCE:
            raise EdgegenError(f"its graph differs from the module at 2x{h}x{w}")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters' warnings and log lines (deprecation, opset conversion, torchvision ops
    skipped) are not the user's concern: export reports what ran in the manifest."""
    loggers = [
        logging.getLogger(n)
        for n in (
            "torch.onnx",
            "torch.export",
            "onnxscript",
            "torch._dynamo",
            "torch.fx.experimental.symbolic_shapes",
        )
    ]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def slim(model: onnx.ModelProto, spec: ModelSpec) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """onnxslim's clean-up, kept only if it computes what the original does (to float rounding).

    Checked on an odd-sized random input (rounded up to the pad multiple) on onnxruntime; the
    result says whether it was kept.
    """
    import onnxslim

    pm = spec.pad_multiple
    h, w = round_up(29, pm), round_up(41, pm)
    x = np.random.default_rng(0).random((1, spec.in_channels, h, w), dtype=np.float32)
    try:
        before = run_onnx(model, x, spec)
    except EdgegenError as exc:
        raise EdgegenError(
            f"the exported graph fails on onnxruntime at {h}x{w}: {exc}", exit_code=1
        ) from None
    info: dict[str, Any] = {"tool": f"onnxslim {onnxslim.__version__}", "applied": False}
    try:
        with _quiet():
            slimmed = onnxslim.slim(model)
        if not isinstance(slimmed, onnx.ModelProto):  # pragma: no cover - onnxslim API contract
            raise ValueError("no model returned")
        after = run_onnx(slimmed, x, spec)
    except Exception as exc:  # onnxslim's own failures, or a slimmed graph that does not run
        info["reason"] = first_line(exc)
        return model, info
    diff = float(np.abs(before - after).max()) if before.shape == after.shape else float("inf")
    info.update(
        nodes_before=len(model.graph.node),
        nodes_after=len(slimmed.graph.node),
        max_abs_diff=diff,
        applied=diff <= SLIM_TOLERANCE,
    )
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
        try:
            return onnx_runner(path, "onnxruntime", "cpu").infer(x)
        except EdgegenError as exc:  # name the graph, not its scratch file
            raise EdgegenError(str(exc).replace(str(path), "the graph"), exc.exit_code) from None


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
