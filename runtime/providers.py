"""Execution providers: which onnxruntime backend runs a model, chosen without silent fallback.

``device`` is ``"auto"``, ``"cpu"``, ``"cuda"``, ``"tensorrt"`` or an explicit list of provider
names (or ``(name, options)`` pairs). Asking for a GPU provider that this onnxruntime cannot offer
is an :class:`EdgegenError` that says why (a CPU-only build, or both ``onnxruntime`` and
``onnxruntime-gpu`` installed); ``"auto"`` picks TensorRT, then CUDA, then CPU among those that are
available and logs the choice. After a session is made, :func:`check_session_providers` makes sure
the provider asked for actually loaded (onnxruntime itself would quietly fall back to the CPU).
Sessions are made by :func:`edgegen.runtime.session.open_session`, whose ``auto``
also checks that each candidate really loads (its libraries, then its session) before taking it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, TypeAlias

from .errors import EdgegenError

log = logging.getLogger("edgegen.runtime")

ProviderSpec: TypeAlias = "str | tuple[str, dict[str, Any]]"

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
DEVICES: dict[str, list[str]] = {
    "cpu": [CPU],
    "cuda": [CUDA, CPU],  # CPU runs only the nodes CUDA has no kernel for
    "tensorrt": [TENSORRT, CUDA, CPU],
}
AUTO_ORDER = ("tensorrt", "cuda", "cpu")


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def installed_distributions() -> list[str]:
    """Which onnxruntime wheels are installed (they overwrite each other when both are)."""
    from importlib import metadata

    found = []
    for name in ("onnxruntime", "onnxruntime-gpu"):
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def provider_name(provider: ProviderSpec) -> str:
    """The provider's name, whether given as a name or a ``(name, options)`` pair."""
    return provider if isinstance(provider, str) else provider[0]


def missing_provider_reason(provider: str) -> str:
    """One line saying why ``provider`` is not available, and what to do about it."""
    dists = installed_distributions()
    if set(dists) == {"onnxruntime", "onnxruntime-gpu"}:
        return (
            f"{provider} is not available: both onnxruntime and onnxruntime-gpu are installed and "
            "overwrite each other; pip uninstall -y onnxruntime onnxruntime-gpu, then "
            "pip install 'edgegen[gpu]'"
        )
    if dists == ["onnxruntime-gpu"]:
        return (
            f"{provider} is not available in this onnxruntime-gpu build "
            f"(available: {', '.join(available_providers())})"
        )
    return (
        f"{provider} is not available in this onnxruntime build (CPU only; available: "
        f"{', '.join(available_providers())}): pip install 'edgegen[gpu]'"
    )


def resolve_providers(
    device: str | Sequence[ProviderSpec] = "auto",
) -> list[ProviderSpec]:
    """The provider list for ``device``; raises :class:`EdgegenError` when one is unavailable."""
    available = available_providers()
    if isinstance(device, str):
        key = device.lower()
        if key == "auto":
            for choice in AUTO_ORDER:
                wanted = DEVICES[choice]
                if wanted[0] in available:
                    chosen = [p for p in wanted if p in available]
                    log.info("device auto: using %s", ", ".join(chosen))
                    return list(chosen)
            raise EdgegenError(  # pragma: no cover - every build has the CPU provider
                "no usable onnxruntime provider"
            )
        if key not in DEVICES:
            raise EdgegenError(
                f"unknown device {device!r}; choose auto, cpu, cuda, tensorrt or pass a list "
                "of onnxruntime provider names"
            )
        primary = DEVICES[key][0]
        if primary not in available:
            raise EdgegenError(f"--device {key}: " + missing_provider_reason(primary))
        return [p for p in DEVICES[key] if p in available]
    providers = list(device)
    if not providers:
        raise EdgegenError("empty provider list")
    for provider in providers:
        name = provider_name(provider)
        if name not in available:
            raise EdgegenError(missing_provider_reason(name))
    return providers


def check_session_providers(session: Any, requested: Sequence[ProviderSpec]) -> list[str]:
    """What the session really runs; raise if the first provider asked for did not load."""
    actual = list(session.get_providers())
    primary = provider_name(requested[0])
    if primary not in actual:
        raise EdgegenError(
            f"{primary} failed to load (its CUDA/cuDNN/TensorRT libraries may be missing or "
            f"mismatched); onnxruntime would have run on {', '.join(actual)} instead"
        )
    return actual
