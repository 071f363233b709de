"""edgegen's runtime: what an application needs to use a model (numpy + onnxruntime, never torch).

Only pure-Python pieces are imported here; anything heavier loads inside the functions that use it,
so ``import edgegen.runtime`` stays cheap and works with just ``edgegen[cpu]`` installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import EdgegenError, SpecError
from .spec import METADATA_KEY, ModelSpec, Provenance

if TYPE_CHECKING:
    from .generator import Generator

__version__ = "0.1.0"

__all__ = [
    "METADATA_KEY",
    "EdgegenError",
    "Generator",
    "ModelSpec",
    "Provenance",
    "SpecError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """``edgegen.runtime.Generator`` loads numpy and the generator module on first use."""
    if name == "Generator":
        from .generator import Generator

        return Generator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
