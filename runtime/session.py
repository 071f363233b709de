"""onnxruntime sessions: the one place edgegen makes an ``InferenceSession``.

:func:`open_session` takes a model (a file, or its bytes), a device (``"auto"``, ``"cpu"``,
``"cuda"``, ``"tensorrt"`` or a provider list) and a :class:`SessionConfig`, and returns the
session with the providers that actually run it. ``device="auto"`` that really loads: it tries
TensorRT, CUDA and the CPU in turn and keeps the first whose session runs on it (onnxruntime-gpu
lists TensorRT even where its libraries are missing, and its session then quietly runs on
another provider). :func:`create_session` is the plain constructor underneath, for callers that
need onnxruntime's own graph options (optimisations off, a saved optimised model).

Provider options live in :mod:`.session_config`, the GPU library probes in :mod:`.gpu_libraries`
and IO binding in :mod:`.io_binding`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import EdgegenError
from .gpu_libraries import (
    library_message,
    missing_libraries,
    preload_gpu_libraries,
    provider_library_error,
)
from .limits import cap_threads
from .providers import (
    AUTO_ORDER,
    CPU,
    DEVICES,
    ProviderSpec,
    available_providers,
    check_session_providers,
    provider_name,
    resolve_providers,
)
from .session_config import (
    GPU,
    SessionConfig,
    applied,
    refuse_inapplicable,
    with_options,
)

log = logging.getLogger("edgegen.runtime")

Source = Path | bytes  # a model file, or a serialized model held in memory
OPTIMIZATION_LEVELS = ("default", "disabled", "basic", "all")


@dataclass
class OpenedSession:
    session: Any  # onnxruntime.InferenceSession
    providers: list[str]  # what actually runs, in priority order
    config: SessionConfig  # with the defaults that depend on the provider filled in
    skipped: list[str] = field(default_factory=list)  # auto: why better providers were passed


def open_session(
    source: Source,
    device: str | Sequence[ProviderSpec] = "auto",
    config: SessionConfig | None = None,
    precision: str | None = None,
) -> OpenedSession:
    """A session for ``source`` on ``device``, the provider it asked for really loaded.

    ``precision`` (the model spec's, when known before the session) picks the CUDA defaults
    that suit it (:meth:`SessionConfig.for_precision`).
    """
    config = config or SessionConfig()
    config.validate()
    if isinstance(device, str) and device.lower() == "auto":
        return _open_auto(source, config, precision)
    requested = resolve_providers(device)
    primary = provider_name(requested[0])
    if primary in GPU:
        preload_gpu_libraries()
        reason = provider_library_error(primary)
        if reason is not None:
            raise EdgegenError(library_message(primary, reason))
    refuse_inapplicable(config, primary, auto=False)
    filled = applied(config, primary, precision)
    session = create_session(source, with_options(requested, filled), filled)
    actual = check_session_providers(session, requested)
    return OpenedSession(session, actual, filled)


def _open_auto(source: Source, config: SessionConfig, precision: str | None) -> OpenedSession:
    available = available_providers()
    skipped: list[str] = []
    for choice in AUTO_ORDER:
        wanted = DEVICES[choice]
        primary = wanted[0]
        if primary not in available:
            if primary != CPU:
                skipped.append(f"{choice}: not in this onnxruntime build")
            continue
        if primary in GPU:
            preload_gpu_libraries()
            reason = provider_library_error(primary)
            if reason is not None:
                skipped.append(f"{choice}: {missing_libraries(reason)}")
                continue
        requested: list[ProviderSpec] = [p for p in wanted if p in available]
        filled = applied(config, primary, precision)
        session = create_session(source, with_options(requested, filled), filled)
        actual = list(session.get_providers())
        if primary not in actual:
            skipped.append(f"{choice}: the session fell back to {', '.join(actual)}")
            continue
        refuse_inapplicable(config, primary, auto=True)
        note = f" (skipped {'; '.join(skipped)})" if skipped else ""
        log.info("device auto: using %s%s", ", ".join(actual), note)
        return OpenedSession(session, actual, filled, skipped)
    raise EdgegenError(  # pragma: no cover - every build has the CPU provider
        "device auto: no provider loads: " + "; ".join(skipped)
    )


def create_session(
    source: Source,
    providers: Sequence[ProviderSpec] = (CPU,),
    config: SessionConfig | None = None,
    *,
    optimization: str = "default",
    save_optimized: Path | None = None,
    save_format: str = "ONNX",
    disabled_optimizers: Sequence[str] = (),
) -> Any:
    """An ``onnxruntime.InferenceSession``; a model onnxruntime cannot load is one line.

    ``optimization``: onnxruntime's graph optimisation level (``disabled`` keeps every tensor
    as written, for per-layer comparisons). ``save_optimized``: also write the optimised graph
    there, in ``save_format`` (``ONNX`` or ``ORT``), without ``disabled_optimizers``.
    """
    import onnxruntime as ort

    config = config or SessionConfig()
    options = ort.SessionOptions()
    # Fatal only: every error reaches the caller as an exception, which edgegen reports in
    # one line; onnxruntime's own log would print it a second time, in colour, on stderr.
    options.log_severity_level = 4
    threads, capped = cap_threads(config.threads)
    if capped is not None:
        log.warning(capped)
    if threads is not None:
        options.intra_op_num_threads = threads
    if not config.spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_cpu_mem_arena = config.cpu_mem_arena
    if optimization not in OPTIMIZATION_LEVELS:
        raise EdgegenError(f"unknown graph optimization {optimization!r}")
    if optimization != "default":
        level = {
            "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[optimization]
        options.graph_optimization_level = level
    if save_optimized is not None:
        options.optimized_model_filepath = str(save_optimized)
        options.add_session_config_entry("session.save_model_format", save_format)
    model = source if isinstance(source, bytes) else str(source)
    name = "the model" if isinstance(source, bytes) else str(source)
    try:
        return ort.InferenceSession(
            model,
            options,
            providers=list(providers),
            disabled_optimizers=list(disabled_optimizers) or None,
        )
    except Exception as exc:  # onnxruntime raises several types; all mean "cannot load"
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        if "graph capture" in text.lower() or "cuda graph" in text.lower():
            where = "this model" if isinstance(source, bytes) else source.name
            raise EdgegenError(f"cuda_graph cannot be used with {where}: {first}") from None
        if "escapes" in first or "Absolute path not allowed" in first:  # its external data
            reason = first.split("Error: ", 1)[-1]
            raise EdgegenError(
                f"{name}: its external data lies outside the model's folder, refused: {reason}"
            ) from None
        raise EdgegenError(
            f"{name} is not an ONNX model onnxruntime {ort.__version__} can load: {first}"
        ) from None
