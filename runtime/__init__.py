"""edgegen's runtime: what an application needs to use a model (numpy + onnxruntime, never torch).

Only pure-Python pieces are imported here; anything heavier loads inside the functions that use it,
so ``import edgegen.runtime`` stays cheap and works with just ``edgegen[cpu]`` installed.
"""

from __future__ import annotations

from .errors import EdgegenError, SpecError
from .spec import METADATA_KEY, ModelSpec, Provenance

__version__ = "0.1.0"

__all__ = ["METADATA_KEY", "EdgegenError", "ModelSpec", "Provenance", "SpecError", "__version__"]
