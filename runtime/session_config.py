"""Provider options: :class:`SessionConfig`, the knobs of a session, and how they apply.

``SessionConfig`` gathers the Generator's keyword arguments (``edgegen run``'s and ``edgegen
bench``'s options). Options that only a GPU provider understands are refused with one line when
the session runs on the CPU alone (never silently ignored); under ``device="auto"`` they are
logged as not applied when auto settles on a provider that cannot use them. The defaults that
depend on the provider (and, on CUDA, on the model's precision) are filled in here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .errors import EdgegenError
from .limits import MAX_THREADS
from .providers import CPU, CUDA, TENSORRT, ProviderSpec, provider_name

log = logging.getLogger("edgegen.runtime")

CUDNN_SEARCH = ("EXHAUSTIVE", "HEURISTIC", "DEFAULT")
GPU = (CUDA, TENSORRT)


@dataclass(frozen=True)
class SessionConfig:
    """How an onnxruntime session is made and run. Defaults in brackets.

    - ``threads``: CPU intra-op threads [onnxruntime's choice].
    - ``spinning``: idle intra-op threads spin for a while before they sleep [on, onnxruntime's
      default]. Off when sessions take turns on few cores: one session's spinning workers then
      take the cores from the next (timed side by side, fp32 went from 46 to 76 ms).
    - ``io_binding``: reuse input/output buffers per shape [on for CUDA and TensorRT, off on the
      CPU, where it is honoured when asked for; its gain there was not measured].
    - ``prefer_nhwc``: CUDA convolutions in NHWC [on for CUDA: faster on tensor cores; off for an
      fp32 model computed exactly, whose cuDNN kernels are NCHW].
    - ``cuda_graph``: capture a CUDA graph per input shape [off: for fixed shapes only].
    - ``cudnn_conv_algo_search``: EXHAUSTIVE, HEURISTIC or DEFAULT [onnxruntime's: EXHAUSTIVE].
    - ``tf32``: CUDA runs float32 convolutions in TF32 on Ampere and newer [None: off for a
      model whose spec says fp32, so that it computes in fp32 and passes its golden check (with
      TF32 it failed it on an H100: 82.5 dB against torch fp32); onnxruntime's default (on) for
      the others: onnxruntime's use_tf32=0 also took the fp16 convolutions off the tensor cores,
      33.5 ms instead of 4.6 on the H100].
    - ``fuse_conv_bias``: cuDNN adds a convolution's bias inside the convolution kernel [on for
      CUDA, unlike onnxruntime's default; off for fp32 models. On the H100, fp16 medium at
      512x512: 3.11 ms instead of 4.62, 0.71x torch's best: the separate bias kernels were 40%
      of the GPU time].
    - ``trt_fp16``: let TensorRT build fp16 kernels [off].
    - ``trt_engine_cache``: a folder where TensorRT keeps built engines across runs [none].
    - ``cpu_mem_arena``: onnxruntime's CPU memory arena [on; see the README for tiled memory].
    """

    threads: int | None = None
    io_binding: bool | None = None
    prefer_nhwc: bool | None = None
    cuda_graph: bool = False
    cudnn_conv_algo_search: str | None = None
    tf32: bool | None = None
    fuse_conv_bias: bool | None = None
    trt_fp16: bool = False
    trt_engine_cache: str | None = None
    cpu_mem_arena: bool = True
    spinning: bool = True

    def validate(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise EdgegenError(f"threads must be >= 1, got {self.threads}")
        if self.threads is not None and self.threads > MAX_THREADS:
            raise EdgegenError(f"threads must be <= {MAX_THREADS}, got {self.threads}")
        search = self.cudnn_conv_algo_search
        if search is not None and search.upper() not in CUDNN_SEARCH:
            raise EdgegenError(
                f"cudnn_conv_algo_search must be one of {', '.join(CUDNN_SEARCH)}, got {search!r}"
            )
        if self.cuda_graph and self.io_binding is False:
            raise EdgegenError("cuda_graph needs io_binding (fixed buffer addresses)")

    def gpu_only(self) -> dict[str, list[str]]:
        """The options set that only CUDA or TensorRT can apply, by the provider they need."""
        cuda = [
            name
            for name, on in (
                ("prefer_nhwc", self.prefer_nhwc is True),
                ("cuda_graph", self.cuda_graph),
                ("cudnn_conv_algo_search", self.cudnn_conv_algo_search is not None),
                ("tf32", self.tf32 is True),
                ("fuse_conv_bias", self.fuse_conv_bias is True),
            )
            if on
        ]
        trt = [
            name
            for name, on in (
                ("trt_fp16", self.trt_fp16),
                ("trt_engine_cache", self.trt_engine_cache is not None),
            )
            if on
        ]
        return {CUDA: cuda, TENSORRT: trt}

    def for_precision(self, precision: str) -> SessionConfig:
        """The config for a model of ``precision`` on CUDA.

        The CUDA defaults (onnxruntime's TF32, edgegen's bias fusion and NHWC) are for fp16
        models: their convolutions need TF32 left on to reach the tensor cores, and the fusion
        was measured on them. An fp32 model runs without TF32 or fusion, so that it computes in
        fp32 and passes its golden check, and in NCHW, where exact fp32 ran 12-20% faster on the
        H100 (cuDNN's fp32 kernels are NCHW; NHWC added transposes). What the caller set wins.
        """
        if precision != "fp32" or (self.tf32 is not None and self.fuse_conv_bias is not None):
            return self
        exact = self.tf32 is not True
        return replace(
            self,
            tf32=False if self.tf32 is None else self.tf32,
            fuse_conv_bias=False if self.fuse_conv_bias is None else self.fuse_conv_bias,
            prefer_nhwc=False if self.prefer_nhwc is None and exact else self.prefer_nhwc,
        )


def refuse_inapplicable(config: SessionConfig, primary: str, auto: bool) -> None:
    """GPU-only options on a session that cannot use them: an error, or (auto) a warning."""
    needs = config.gpu_only()
    usable = {CUDA: primary in GPU, TENSORRT: primary == TENSORRT}
    unused = [name for provider, names in needs.items() if not usable[provider] for name in names]
    if not unused:
        return
    if auto:
        log.warning("device auto chose %s; not applied there: %s", primary, ", ".join(unused))
        return
    where = {CPU: "the CPU", CUDA: "CUDA"}.get(primary, primary)
    raise EdgegenError(
        f"{', '.join(unused)} cannot apply on {where} ({primary}): "
        + (
            "TensorRT options need device tensorrt"
            if all(n.startswith("trt_") for n in unused)
            else "it needs device cuda or tensorrt"
        )
    )


def fill_defaults(config: SessionConfig, primary: str) -> SessionConfig:
    """The config as it applies on ``primary``: provider-dependent defaults filled in, and the
    options that provider cannot use turned off (only ``auto`` gets here with any)."""
    gpu, trt = primary in GPU, primary == TENSORRT
    cuda_graph = config.cuda_graph and gpu
    io_binding = config.io_binding if config.io_binding is not None else gpu
    prefer_nhwc = config.prefer_nhwc if config.prefer_nhwc is not None else gpu
    return replace(
        config,
        io_binding=io_binding or cuda_graph,
        prefer_nhwc=prefer_nhwc and gpu,
        cuda_graph=cuda_graph,
        cudnn_conv_algo_search=config.cudnn_conv_algo_search if gpu else None,
        tf32=config.tf32 if gpu else None,
        fuse_conv_bias=(config.fuse_conv_bias is not False) if gpu else None,
        trt_fp16=config.trt_fp16 and trt,
        trt_engine_cache=config.trt_engine_cache if trt else None,
    )


def applied(config: SessionConfig, primary: str, precision: str | None = None) -> SessionConfig:
    """What a session on ``primary`` for a model of ``precision`` runs with: on CUDA the
    defaults that suit the precision (not under TensorRT, whose CUDA provider runs only the
    nodes TensorRT leaves), then the provider's defaults."""
    if primary == CUDA and precision is not None:
        config = config.for_precision(precision)
    return fill_defaults(config, primary)


def cuda_options(config: SessionConfig, graph: bool = True) -> dict[str, str]:
    """CUDA provider options for ``config`` (onnxruntime takes strings)."""
    options: dict[str, str] = {}
    if config.prefer_nhwc:
        options["prefer_nhwc"] = "1"
    if config.cuda_graph and graph:
        options["enable_cuda_graph"] = "1"
    if config.cudnn_conv_algo_search is not None:
        options["cudnn_conv_algo_search"] = config.cudnn_conv_algo_search.upper()
    if config.tf32 is not None:
        options["use_tf32"] = "1" if config.tf32 else "0"
    if config.fuse_conv_bias is not None:
        options["fuse_conv_bias"] = "1" if config.fuse_conv_bias else "0"
    return options


def tensorrt_options(config: SessionConfig) -> dict[str, str]:
    options = {"trt_fp16_enable": "True" if config.trt_fp16 else "False"}
    if config.trt_engine_cache is not None:
        options["trt_engine_cache_enable"] = "True"
        options["trt_engine_cache_path"] = str(config.trt_engine_cache)
    if config.cuda_graph:
        options["trt_cuda_graph_enable"] = "True"
    return options


def with_options(requested: Sequence[ProviderSpec], config: SessionConfig) -> list[ProviderSpec]:
    """Attach the config's options to the CUDA/TensorRT entries; options given in an explicit
    ``(name, options)`` pair win."""
    trt_first = provider_name(requested[0]) == TENSORRT
    out: list[ProviderSpec] = []
    for provider in requested:
        name = provider_name(provider)
        given = {} if isinstance(provider, str) else dict(provider[1])
        if name == CUDA:
            # Behind TensorRT the CUDA provider runs only what TensorRT cannot; the graph is
            # TensorRT's then.
            ours = cuda_options(config, graph=not trt_first)
        elif name == TENSORRT:
            ours = tensorrt_options(config)
        else:
            ours = {}
        merged = {**ours, **given}
        out.append((name, merged) if merged else name)
    return out
