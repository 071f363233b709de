"""fp32 ONNX export: dynamic batch/height/width, checked, shape-inferred, slimmed, spec attached."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
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
# The trace's opset when the default lacks an operator (col2im): the dynamo exporter's own.
TRACE_NEWEST_OPSET = 18
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
PROBE_TOLERANCE = 1e-3  # a graph that is wrong differs by far more; verification is the judge


class ImageOnly(nn.Module):
    """The user's module called with the image alone: a ``forward(x, alpha=1.0)`` keeps its
    defaults as constants instead of growing graph inputs."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)  # type: ignore[no-any-return]


def probe_module(module: nn.Module, spec: ModelSpec) -> bool:
    """Run the module once on a small input: its output must be the image ``spec`` promises.

    Raises one line (exit 2) naming what it returned instead. Returns whether the forward
    rewrote the module's own parameters or buffers (SPAN re-fuses its convolutions' weights
    into ``.data`` on every eval call): torch.export's constant folding crashes the process on
    such a forward, so the dynamo exporter is not tried on it.
    """
    pm = spec.pad_multiple
    h, w = round_up(EXPORT_SIZE, pm), round_up(EXPORT_SIZE + 16, pm)
    x = torch.rand(1, spec.in_channels, h, w)
    before = _tensor_identities(module)
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
    return _tensor_identities(module) != before


def _tensor_identities(module: nn.Module) -> list[tuple[str, int, int]]:
    """Each parameter's and buffer's storage and version: an in-place write or a ``.data``
    assignment changes one."""
    tensors = [*module.named_parameters(), *module.named_buffers()]
    return [(name, t.data_ptr(), t._version) for name, t in tensors]


def is_own_generator(module: nn.Module) -> bool:
    """edgegen's own architecture (the spec's arch name alone does not say: it is the default
    of a spec a user writes for a module of their own)."""
    from edgegen.train.archs import OWN_MODULES

    return isinstance(module, OWN_MODULES)


def _extra_parameters(module: nn.Module) -> bool:
    import inspect

    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):  # a builtin or C-extension forward: call it as it is
        return False
    return len(params) > 1


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def first_line(exc: BaseException) -> str:
    text = _ANSI.sub("", str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def root_cause(exc: BaseException) -> str:
    """The innermost exception's first line: torch.onnx wraps the real error ("Unsupported:
    ...", "invalid expand shape") in a message that starts with the steps of its pipeline."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {first_line(exc)}"


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def export_fp32(
    module: nn.Module, spec: ModelSpec, opset: int | None = None, exporter: str = "trace"
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Export ``module`` to ONNX with ``exporter`` (:data:`EXPORTERS`); check it, infer shapes,
    slim it and attach the spec.

    ``opset`` None is :data:`DEFAULT_OPSET`, or the dynamo exporter's own (18) where its graph
    does not convert down (onnx has no adapter from Pad-18 to 17, and window-attention networks
    pad); an opset asked for is that opset or an error.

    Returns the model and what the export did (for the manifest): the exporter that ran (and
    why dynamo did not, under auto), the opset and onnxslim's result.
    """
    asked = opset is not None
    opset = DEFAULT_OPSET if opset is None else opset
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
    rewrites = probe_module(wrapped, spec)
    info: dict[str, Any] = {}
    model = None
    if rewrites and exporter != "trace":
        why = "the module rewrites its own weights in forward, which torch.export cannot take"
        if exporter == "dynamo":
            raise EdgegenError(f"--exporter dynamo: {why}; use --exporter trace")
        exporter, info["why"] = "trace", why
    if exporter == "auto" and is_own_generator(module):
        # edgegen's own generators are convolutions whose trace holds at every size (verified
        # below as any graph is), and QAT maps their layers by the trace's node names.
        exporter = "trace"
        info["why"] = "edgegen's own architecture: the trace"
    if exporter in ("auto", "dynamo"):
        try:
            model = _finish(_dynamo(wrapped, spec, opset, exact=asked), spec)
            if exporter == "auto":
                for batch in (1, 2):
                    _agrees(model, wrapped, spec, batch)
            info["exporter"] = "dynamo"
        except EdgegenError as exc:
            if exporter == "dynamo":
                raise
            model, info["dynamo_failed"] = None, str(exc)
    try:
        if model is None:
            try:
                model = _finish(_trace(wrapped, spec, opset), spec)
            except EdgegenError as exc:
                # An operator newer than the default opset (col2im, opset 18): the newest opset
                # onnxruntime runs, unless the user asked for one.
                if asked or opset >= TRACE_NEWEST_OPSET or "opset version" not in str(exc):
                    raise
                model = _finish(_trace(wrapped, spec, TRACE_NEWEST_OPSET), spec)
                info["opset_why"] = f"an operator needs an opset newer than {opset}: {exc}"
            info["exporter"] = "trace"
            if "dynamo_failed" in info:
                model = _pin_batch_if_needed(model, wrapped, spec, info)
        model, info["slim"] = slim(model, spec)
    except EdgegenError as exc:
        if "dynamo_failed" not in info:
            raise
        # Both exporters failed: the user needs both reasons to choose what to change.
        raise EdgegenError(
            f"{exc} (the trace, after the dynamo exporter failed: {info['dynamo_failed']})",
            exit_code=exc.exit_code,
        ) from None
    info["opset"] = _opset_of(model)
    if info["opset"] != opset and "opset_why" not in info:
        info["opset_why"] = f"the dynamo graph does not convert to opset {opset}"
    set_spec(model, spec.replace(precision="fp32"))
    onnx.checker.check_model(model)
    return model, info


def _trace(module: nn.Module, spec: ModelSpec, opset: int) -> onnx.ModelProto:
    dummy = torch.rand(1, spec.in_channels, *(round_up(EXPORT_SIZE, spec.pad_multiple),) * 2)
    buf = io.BytesIO()
    with torch.no_grad(), _quiet(), _native_stdout_silenced():
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


def _dynamo(module: nn.Module, spec: ModelSpec, opset: int, exact: bool = True) -> onnx.ModelProto:
    """torch.export with symbolic batch, height and width (multiples of the pad multiple).

    Converted down to ``opset`` where it is older than the exporter's; if that fails, an error
    when ``exact``, else the graph at the exporter's opset.
    """
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
            raise EdgegenError(f"torch.onnx.export (dynamo) failed: {root_cause(exc)}") from None
    if _opset_of(model) != opset:
        try:
            converted = onnx.version_converter.convert_version(model, opset)
            # The converter can write what the older opset does not have (ReduceMean-18's
            # noop_with_empty_axes kept at ReduceMean-13): such a graph did not convert.
            onnx.checker.check_model(converted)
            model = converted
        except Exception as exc:  # the converter raises RuntimeError and ValueError alike
            if not exact:
                return model
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
    # onnxruntime takes two dims of one name to be equal and plans buffer reuse on it: the
    # trace names an upscaler's output "height" like its input, and a graph that ran in fp32
    # then fails in fp16 ("Shape mismatch attempting to re-use buffer"). The output's sizes
    # get their own names, and the exporters' intermediate shapes are inferred afresh.
    suffix = "" if spec.scale == 1 else f"_x{spec.scale}"
    for value, tail in ((inputs[0], ""), (model.graph.output[0], suffix)):
        for k, name in ((2, "height"), (3, "width")):
            dim = value.type.tensor_type.shape.dim[k]
            dim.Clear()
            dim.dim_param = name + tail
    del model.graph.value_info[:]
    try:
        onnx.checker.check_model(model)
        return onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as exc:  # onnx's checker and inference errors
        raise EdgegenError(f"the exported graph is not valid ONNX: {first_line(exc)}") from None


def _agrees(model: onnx.ModelProto, module: nn.Module, spec: ModelSpec, batch: int) -> None:
    """The graph computes what the module does at :data:`PROBE_SIZES` and ``batch``, else
    raise."""
    pm = spec.pad_multiple
    for h, w in PROBE_SIZES:
        h, w = round_up(h, pm), round_up(w, pm)
        x = np.random.default_rng(h).random((batch, spec.in_channels, h, w), dtype=np.float32)
        try:
            got = run_onnx(model, x, spec)
        except EdgegenError as exc:
            raise EdgegenError(f"its graph fails at {batch}x{h}x{w}: {exc}") from None
        try:
            with torch.no_grad():
                want = module(torch.from_numpy(x.copy())).numpy()
        except Exception as exc:  # the module's own limit, e.g. a batch of one
            first = first_line(exc)
            raise EdgegenError(f"the module itself fails at {batch}x{h}x{w}: {first}") from None
        if got.shape != want.shape or float(np.abs(got - want).max()) > PROBE_TOLERANCE:
            raise EdgegenError(f"its graph differs from the module at {batch}x{h}x{w}")


def _pin_batch_if_needed(
    model: onnx.ModelProto, module: nn.Module, spec: ModelSpec, info: dict[str, Any]
) -> onnx.ModelProto:
    """The trace (taken after dynamo failed) with its batch fixed at 1 where it is right for a
    batch of one only: a network that turns ``x.shape[0]`` into a Python number (``int(n /
    windows)``) bakes the trace's batch into its reshapes. The runtime runs such a graph one
    image at a time. Left as it is where it is wrong at a batch of one too (verification says)."""
    try:
        _agrees(model, module, spec, 1)
    except EdgegenError:
        return model
    try:
        _agrees(model, module, spec, 2)
        return model
    except EdgegenError as exc:
        info["batch"] = f"1 (at a batch of 2, {exc})"
    for value in (model.graph.input[0], model.graph.output[0]):
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_value = 1
    return model


def fixed_batch(model: onnx.ModelProto) -> bool:
    """Whether the graph takes a batch of one only."""
    return model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1


@contextlib.contextmanager
def _native_stdout_silenced() -> Iterator[None]:
    """File descriptor 1 pointed at /dev/null: on a failed export the trace exporter's C++ side
    prints the whole TorchScript graph (thousands of lines) to stdout, past Python's
    ``sys.stdout``. edgegen reports the failure in one line instead."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no fd 1 (an embedding app closed it): nothing to protect
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


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
