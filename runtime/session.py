"""onnxruntime sessions for the Generator: provider options, ``device="auto"`` that really loads,
and IO binding with buffers reused per input shape (the CUDA fast path, CUDA graphs included).

:class:`SessionConfig` gathers the knobs (the Generator's keyword arguments, ``edgegen run``'s and
``edgegen bench``'s options). Options that only a GPU provider understands are refused with one
line when the session runs on the CPU alone (never silently ignored); under ``device="auto"`` they
are logged as not applied when auto settles on a provider that cannot use them.

IO binding (:class:`BoundRun`): one input and one output buffer per shape, allocated on the
provider's device on first use and reused, so a call copies the input in, runs, and copies the
output out, with no allocation. With ``cuda_graph`` each new shape gets its own CUDA graph id,
and the runs onnxruntime needs before it captures (warm-up) happen when the shape is first seen.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EdgegenError
from .providers import (
    AUTO_ORDER,
    CPU,
    CUDA,
    DEVICES,
    TENSORRT,
    ProviderSpec,
    available_providers,
    check_session_providers,
    resolve_providers,
)

log = logging.getLogger("edgegen.runtime")

CUDNN_SEARCH = ("EXHAUSTIVE", "HEURISTIC", "DEFAULT")
MAX_BINDINGS = 8  # shapes whose buffers are kept (least recently used one dropped beyond)
MAX_GRAPHS = 8  # CUDA graphs per session: onnxruntime never frees a captured one
GRAPH_WARMUP_RUNS = 3  # onnxruntime runs regularly before it captures; 3 covers every version
_PROVIDER_LIBS = {CUDA: "onnxruntime_providers_cuda", TENSORRT: "onnxruntime_providers_tensorrt"}
_GPU = (CUDA, TENSORRT)


@dataclass(frozen=True)
class SessionConfig:
    """How the Generator's onnxruntime session is made and run. Defaults in brackets.

    - ``threads``: CPU intra-op threads [onnxruntime's choice].
    - ``io_binding``: reuse input/output buffers per shape [on for CUDA and TensorRT, off on the
      CPU, where it is honoured when asked for; its gain there was not measured].
    - ``prefer_nhwc``: CUDA convolutions in NHWC [on for CUDA: faster on tensor cores; the
      Generator turns it off for an fp32 model computed exactly, whose cuDNN kernels are NCHW].
    - ``cuda_graph``: capture a CUDA graph per input shape [off: for fixed shapes only].
    - ``cudnn_conv_algo_search``: EXHAUSTIVE, HEURISTIC or DEFAULT [onnxruntime's: EXHAUSTIVE].
    - ``tf32``: CUDA runs float32 convolutions in TF32 on Ampere and newer [None: off for a
      model whose spec says fp32, so that it computes in fp32 and passes its golden check (with
      TF32 it failed it on an H100: 82.5 dB against torch fp32); onnxruntime's default (on) for
      the others: onnxruntime's use_tf32=0 also took the fp16 convolutions off the tensor cores,
      33.5 ms instead of 4.6 on the H100].
    - ``fuse_conv_bias``: cuDNN adds a convolution's bias inside the convolution kernel [on for
      CUDA, unlike onnxruntime's default; off for fp32 models (the Generator decides, from the
      spec). On the H100, fp16 medium at 512x512: 3.11 ms instead of 4.62, 0.71x torch's best:
      the separate bias kernels were 40% of the GPU time].
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

    def validate(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise EdgegenError(f"threads must be >= 1, got {self.threads}")
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


@dataclass
class OpenedSession:
    session: Any  # onnxruntime.InferenceSession
    providers: list[str]  # what actually runs, in priority order
    config: SessionConfig  # with the defaults that depend on the provider filled in
    skipped: list[str] = field(default_factory=list)  # auto: why better providers were passed


def open_session(
    path: Path,
    device: str | Sequence[ProviderSpec] = "auto",
    config: SessionConfig | None = None,
) -> OpenedSession:
    """An onnxruntime session for ``path`` on ``device`` (a name or a provider list).

    ``device="auto"`` tries TensorRT, CUDA and the CPU in turn and keeps the first whose session
    really runs on it: onnxruntime-gpu lists TensorRT even where its libraries are missing, and
    its session then quietly runs on another provider.
    """
    config = config or SessionConfig()
    config.validate()
    if isinstance(device, str) and device.lower() == "auto":
        return _open_auto(path, config)
    requested = resolve_providers(device)
    primary = _name(requested[0])
    if primary in _GPU:
        _preload_gpu_libraries()
        reason = provider_library_error(primary)
        if reason is not None:
            raise EdgegenError(_library_message(primary, reason))
    _refuse_inapplicable(config, primary, auto=False)
    config = _fill_defaults(config, primary)
    session = _create(path, _with_options(requested, config), config)
    actual = check_session_providers(session, requested)
    return OpenedSession(session, actual, config)


def _open_auto(path: Path, config: SessionConfig) -> OpenedSession:
    available = available_providers()
    skipped: list[str] = []
    for choice in AUTO_ORDER:
        wanted = DEVICES[choice]
        primary = wanted[0]
        if primary not in available:
            if primary != CPU:
                skipped.append(f"{choice}: not in this onnxruntime build")
            continue
        if primary in _GPU:
            _preload_gpu_libraries()
            reason = provider_library_error(primary)
            if reason is not None:
                skipped.append(f"{choice}: {_missing_libraries(reason)}")
                continue
        requested: list[ProviderSpec] = [p for p in wanted if p in available]
        filled = _fill_defaults(config, primary)
        session = _create(path, _with_options(requested, filled), filled)
        actual = list(session.get_providers())
        if primary not in actual:
            skipped.append(f"{choice}: the session fell back to {', '.join(actual)}")
            continue
        _refuse_inapplicable(config, primary, auto=True)
        note = f" (skipped {'; '.join(skipped)})" if skipped else ""
        log.info("device auto: using %s%s", ", ".join(actual), note)
        return OpenedSession(session, actual, filled, skipped)
    raise EdgegenError(  # pragma: no cover - every build has the CPU provider
        "device auto: no provider loads: " + "; ".join(skipped)
    )


def _name(provider: ProviderSpec) -> str:
    return provider if isinstance(provider, str) else provider[0]


def _refuse_inapplicable(config: SessionConfig, primary: str, auto: bool) -> None:
    """GPU-only options on a session that cannot use them: an error, or (auto) a warning."""
    needs = config.gpu_only()
    usable = {CUDA: primary in _GPU, TENSORRT: primary == TENSORRT}
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


def _fill_defaults(config: SessionConfig, primary: str) -> SessionConfig:
    """The config as it applies on ``primary``: provider-dependent defaults filled in, and the
    options that provider cannot use turned off (only ``auto`` gets here with any)."""
    gpu, trt = primary in _GPU, primary == TENSORRT
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


def _with_options(requested: Sequence[ProviderSpec], config: SessionConfig) -> list[ProviderSpec]:
    """Attach the config's options to the CUDA/TensorRT entries; options given in an explicit
    ``(name, options)`` pair win."""
    trt_first = _name(requested[0]) == TENSORRT
    out: list[ProviderSpec] = []
    for provider in requested:
        name = _name(provider)
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


def _create(path: Path, providers: list[ProviderSpec], config: SessionConfig) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if config.threads is not None:
        options.intra_op_num_threads = config.threads
    options.enable_cpu_mem_arena = config.cpu_mem_arena
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises several types; all mean "cannot load"
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        if "graph capture" in text.lower() or "cuda graph" in text.lower():
            raise EdgegenError(f"cuda_graph cannot be used with {path.name}: {first}") from None
        if "escapes" in first or "Absolute path not allowed" in first:  # its external data
            reason = first.split("Error: ", 1)[-1]
            raise EdgegenError(
                f"{path}: its external data lies outside the model's folder, refused: {reason}"
            ) from None
        raise EdgegenError(
            f"{path} is not an ONNX model onnxruntime {ort.__version__} can load: {first}"
        ) from None


# -- provider libraries ----------------------------------------------------------------------

_preloaded = False


def _preload_gpu_libraries() -> None:
    """Let onnxruntime find CUDA/cuDNN from pip's nvidia packages (or a CUDA torch already
    imported); its own messages go to the debug log instead of stdout."""
    global _preloaded
    if _preloaded:
        return
    _preloaded = True
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            preload()
    except Exception as exc:  # a missing directory or library: the probe below names it
        log.debug("onnxruntime.preload_dlls: %s", exc)
    if buffer.getvalue().strip():
        log.debug("onnxruntime.preload_dlls: %s", buffer.getvalue().strip())


def provider_library_error(provider: str) -> str | None:
    """Why ``provider``'s onnxruntime library cannot load (the dynamic loader's message, which
    names the first missing library), or None if it loads or is not a separate library."""
    import onnxruntime as ort

    stem = _PROVIDER_LIBS.get(provider)
    if stem is None:
        return None
    capi = Path(ort.__file__).parent / "capi"
    name = f"{stem}.dll" if sys.platform == "win32" else f"lib{stem}.so"
    path = capi / name
    if not path.is_file():
        return None  # nothing to probe: the session itself will say
    return library_error(path)


def library_error(path: Path) -> str | None:
    """The loader's message when ``path`` or a library it needs cannot be found; None when it
    loads, and also for other failures (an unresolved symbol, say), which onnxruntime's own
    loading may not meet: the session then says whether the provider runs."""
    try:
        ctypes.CDLL(str(path))
    except OSError as exc:
        text = str(exc)
        missing = "cannot open shared object file" in text or "not a valid Win32" in text
        return text if missing else None
    return None


_LIB_PATTERN = re.compile(r"(lib[\w.+-]+?\.so(?:\.\d+)*|[\w.+-]+\.dll)")


def _missing_libraries(reason: str) -> str:
    """The libraries named in a loader message, first the one that failed."""
    names = [n for n in _LIB_PATTERN.findall(reason) if "onnxruntime_providers" not in n]
    unique = list(dict.fromkeys(names))
    return (
        f"missing {', '.join(unique)}"
        if unique
        else reason.strip().splitlines()[0]
        if reason.strip()
        else "library failed to load"
    )


def _library_message(provider: str, reason: str) -> str:
    if provider == TENSORRT:
        hint = (
            "TensorRT's libraries (libnvinfer, libnvinfer_plugin, libnvonnxparser) must be "
            "installed and findable: pip install tensorrt, or add TensorRT's lib folder to "
            "LD_LIBRARY_PATH; or use device cuda"
        )
    else:
        hint = (
            "the CUDA and cuDNN libraries this onnxruntime-gpu was built for must be installed: "
            "pip install 'onnxruntime-gpu[cuda,cudnn]', or add their lib folders to "
            "LD_LIBRARY_PATH"
        )
    return f"{provider} cannot load: {_missing_libraries(reason)}; {hint}"


# -- IO binding ------------------------------------------------------------------------------


class BoundRun:
    """One shape's reusable input and output buffers, bound to the session.

    ``input`` and ``output`` are onnxruntime ``OrtValue``s on the provider's device; an embedder
    may write ``input`` itself (``input.update_inplace(array)``) and call :meth:`run` to keep data
    on the device between calls. :meth:`__call__` copies a host array in and the result out.
    """

    def __init__(
        self,
        session: Any,
        names: tuple[str, str],
        in_shape: tuple[int, ...],
        out_shape: tuple[int, ...],
        dtypes: tuple[np.dtype[Any], np.dtype[Any]],
        device: tuple[str, int],
        graph_id: int | None,
        lock: threading.Lock | None = None,
    ) -> None:
        import onnxruntime as ort

        self.shape = in_shape
        self._session = session
        kind, index = device
        self.input = ort.OrtValue.ortvalue_from_shape_and_type(in_shape, dtypes[0], kind, index)
        self.output = ort.OrtValue.ortvalue_from_shape_and_type(out_shape, dtypes[1], kind, index)
        self._binding = session.io_binding()
        self._binding.bind_ortvalue_input(names[0], self.input)
        self._binding.bind_ortvalue_output(names[1], self.output)
        self._run_options = ort.RunOptions()
        self.graph_id = graph_id
        if graph_id is not None:
            self._run_options.add_run_config_entry("gpu_graph_id", str(graph_id))
        self.lock = lock if lock is not None else threading.Lock()

    def run(self) -> None:
        """Run on what ``input`` holds now; the result is in ``output`` when this returns."""
        try:
            self._session.run_with_iobinding(self._binding, self._run_options)
        except Exception as exc:  # onnxruntime's errors: report the first line
            text = str(exc).strip()
            raise EdgegenError(
                f"onnxruntime failed on a {list(self.shape)} input: "
                + (text.splitlines()[0] if text else type(exc).__name__)
            ) from None

    def warm_up(self, runs: int) -> None:
        for _ in range(runs):
            self.run()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with self.lock:
            self.input.update_inplace(x)
            self.run()
            # A CPU OrtValue's numpy() is a view of the buffer the next call overwrites.
            return np.array(self.output.numpy(), copy=True)


class Bindings:
    """Per-shape :class:`BoundRun`s of one session, made on first use and reused."""

    def __init__(
        self,
        session: Any,
        names: tuple[str, str],
        dtypes: tuple[np.dtype[Any], np.dtype[Any]],
        primary: str,
        cuda_graph: bool,
    ) -> None:
        self._session = session
        self._names = names
        self._dtypes = dtypes
        self._device = ("cuda", 0) if primary in _GPU else ("cpu", 0)
        self._graphs = cuda_graph
        self._runs: OrderedDict[tuple[int, ...], BoundRun] = OrderedDict()
        self._lock = threading.Lock()
        self._next_graph = 1  # 0 is onnxruntime's own; -1 means "no graph"
        # Captured graphs replay on the session's one stream: one call at a time for all shapes.
        self._graph_lock = threading.Lock() if cuda_graph else None

    def get(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> BoundRun:
        with self._lock:
            bound = self._runs.get(in_shape)
            if bound is not None:
                self._runs.move_to_end(in_shape)
                return bound
            graph_id = None
            if self._graphs:
                if self._next_graph > MAX_GRAPHS:
                    shapes = ", ".join("x".join(map(str, s)) for s in self._runs)
                    raise EdgegenError(
                        f"cuda_graph is for fixed shapes: {MAX_GRAPHS} are captured already "
                        f"({shapes}); a new {'x'.join(map(str, in_shape))} input needs "
                        "cuda_graph=False"
                    )
                graph_id = self._next_graph
                self._next_graph += 1
            elif len(self._runs) >= MAX_BINDINGS:
                self._runs.popitem(last=False)
            bound = BoundRun(
                self._session,
                self._names,
                in_shape,
                out_shape,
                self._dtypes,
                self._device,
                graph_id,
                self._graph_lock,
            )
            if graph_id is not None:
                # Warm-up per new shape: onnxruntime runs a graph id regularly (allocating what
                # it needs) before it captures it; do those runs now, not in a caller's timing.
                bound.warm_up(GRAPH_WARMUP_RUNS)
            self._runs[in_shape] = bound
            return bound

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        with self._lock:
            return list(self._runs)
