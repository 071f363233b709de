"""Options several commands share: the session options of ``edgegen run`` and ``edgegen bench``
(one decorator, so both offer the same flags with the same defaults as
:class:`edgegen.runtime.Generator`), ``--device`` and the comma lists."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import click

from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.session_config import CUDNN_SEARCH

F = TypeVar("F", bound=Callable[..., Any])


class FiniteFloat(click.ParamType):
    """A float option that refuses NaN and inf: ``--max-lsb nan`` would be a limit that no
    comparison can break, so a CI gate built on it could never fail."""

    name = "number"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float) and math.isfinite(value):
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


FINITE = FiniteFloat()

DEVICE_HELP = "auto (TensorRT > CUDA > CPU), cpu, cuda or tensorrt; never a silent fallback."

GPU_ONLY = (
    "prefer_nhwc",
    "cuda_graph",
    "cudnn_conv_algo_search",
    "tf32",
    "fuse_conv_bias",
    "trt_fp16",
    "trt_engine_cache",
)


def session_options(fn: F) -> F:
    """Add --io-binding, --prefer-nhwc, --cuda-graph, --cudnn-conv-algo-search, --tf32,
    --fuse-conv-bias, --trt-fp16, --trt-engine-cache and --cpu-mem-arena; they reach the command
    as Generator's keywords."""
    options = [
        click.option(
            "--io-binding/--no-io-binding",
            default=None,
            help="Reuse input/output buffers per shape. [default: on for cuda/tensorrt]",
        ),
        click.option(
            "--prefer-nhwc/--no-prefer-nhwc",
            default=None,
            help="CUDA convolutions in NHWC. [default: on for cuda]",
        ),
        click.option(
            "--cuda-graph",
            is_flag=True,
            help="Capture a CUDA graph per input shape (fixed sizes, e.g. tiles). [default: off]",
        ),
        click.option(
            "--cudnn-conv-algo-search",
            type=click.Choice(CUDNN_SEARCH, case_sensitive=False),
            default=None,
            help="cuDNN's convolution search. [default: EXHAUSTIVE]",
        ),
        click.option(
            "--tf32/--no-tf32",
            default=None,
            help="CUDA may run fp32 convolutions in TF32 (faster, less exact). "
            "[default: off for fp32 models]",
        ),
        click.option(
            "--fuse-conv-bias/--no-fuse-conv-bias",
            default=None,
            help="cuDNN adds the bias inside the convolution kernel. "
            "[default: on for cuda, off for fp32 models]",
        ),
        click.option("--trt-fp16", is_flag=True, help="TensorRT may build fp16 kernels."),
        click.option(
            "--trt-engine-cache",
            type=click.Path(file_okay=False),
            default=None,
            help="Folder where TensorRT keeps its built engines.",
        ),
        click.option(
            "--cpu-mem-arena/--no-cpu-mem-arena",
            default=True,
            show_default=True,
            help="onnxruntime's CPU memory arena.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def for_device(session: dict[str, Any], device: str) -> dict[str, Any]:
    """The options that apply on ``device``: the GPU-only ones are left out on the CPU."""
    if device.lower() != "cpu":
        return dict(session)
    return {k: v for k, v in session.items() if k not in GPU_ONLY}


def comma_list(text: str | None, option: str) -> list[str] | None:
    """``"cpu, cuda"`` -> ``["cpu", "cuda"]``; None stays None (the default); empty is an error."""
    if text is None:
        return None
    items = [p.strip() for p in text.split(",") if p.strip()]
    if not items:
        raise EdgegenError(f"{option} is empty")
    return items
