"""The model spec: everything a model needs to be used without its training code.

Training stores it in the checkpoint, export stores it in the ONNX file's ``metadata_props`` (key
``edgegen.spec``, JSON) and the runtime reads it from there, so nobody passes pre- or
post-processing options by hand. Pure Python on purpose: the runtime must import it without torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from .errors import SpecError

SPEC_VERSION = 1
METADATA_KEY = "edgegen.spec"

TASKS = ("denoise", "sr", "jpeg")
COLOR_ORDERS = ("RGB", "BGR", "GRAY")
LAYOUTS = ("NCHW", "NHWC")
PRECISIONS = ("fp32", "fp16", "int8", "mixed")
# Bounds on what a spec may say, checked when it is read: beyond them a model file (edited,
# corrupt or hostile) would make the runtime pad an image to 100000 pixels, or compute in a
# range where float32 has no resolution. Real networks sit far inside (window attention pads
# to 8..64; ranges are [0, 1], [-1, 1] or [0, 255]).
MAX_PAD_MULTIPLE = 1024
MAX_RECEPTIVE_FIELD = 1 << 16
MAX_VALUE = 65535.0
# The degradations a spec may record (what the model undoes) and the parameter each needs: a
# number, or [low, high] for a range (a blind model).
DEGRADATIONS: dict[str, str] = {
    "gaussian_noise": "sigma",
    "bicubic_downscale": "scale",
    "jpeg": "quality",
}


@dataclass
class Provenance:
    """Where a model came from: enough to trace an artifact back to its training run."""

    checkpoint_sha256: str | None = None
    step: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    edgegen_version: str | None = None
    run: str | None = None


@dataclass
class ModelSpec:
    """What a model computes and how its inputs and outputs are laid out.

    Values are in ``value_range`` (default 0..1), ``color_order`` channels, ``layout``; an input's
    height and width must be a multiple of ``pad_multiple`` (the runtime pads and crops back); the
    output is ``scale`` times larger. ``degradation`` records what the model was trained to undo,
    so tools can make ground-truth pairs for it: ``{"kind": "gaussian_noise", "sigma": 25.0}``
    (sigma in 8-bit steps, or ``[5, 50]`` for a blind model), ``{"kind": "bicubic_downscale",
    "scale": 2}`` or ``{"kind": "jpeg", "quality": 30}`` (:data:`DEGRADATIONS`).

    ``receptive_field`` is the width in input pixels that one output pixel depends on (tiling
    overlaps tiles by it); ``global_field`` says that every output pixel depends on the whole
    input (attention over the image, global pooling, instance norm), so tiles change the output;
    ``tiled_max_lsb`` is the largest difference export measured between tiled and whole outputs
    on its verification photos (8-bit steps), or null when not measured.
    """

    task: str
    scale: int = 1
    in_channels: int = 3
    out_channels: int = 3
    color_order: str = "RGB"
    value_range: tuple[float, float] = (0.0, 1.0)
    layout: str = "NCHW"
    pad_multiple: int = 1
    arch: str = "residual_generator"
    arch_params: dict[str, Any] = field(default_factory=dict)
    receptive_field: int | None = None
    global_field: bool = False
    tiled_max_lsb: float | None = None
    degradation: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"
    provenance: Provenance = field(default_factory=Provenance)
    version: int = SPEC_VERSION

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check values that types alone cannot; raise :class:`SpecError` naming the field."""
        _check_choice("task", self.task, TASKS)
        _check_choice("color_order", self.color_order, COLOR_ORDERS)
        _check_choice("layout", self.layout, LAYOUTS)
        _check_choice("precision", self.precision, PRECISIONS)
        if self.scale not in (1, 2, 3, 4):
            raise SpecError(f"spec field 'scale' must be 1, 2, 3 or 4, got {self.scale}")
        if self.task == "sr" and self.scale == 1:
            raise SpecError("spec field 'scale' must be 2, 3 or 4 for task 'sr'")
        if self.task != "sr" and self.scale != 1:
            raise SpecError(f"spec field 'scale' must be 1 for task {self.task!r}")
        for name in ("in_channels", "out_channels"):
            if getattr(self, name) not in (1, 3):
                raise SpecError(f"spec field {name!r} must be 1 or 3, got {getattr(self, name)}")
        if (self.color_order == "GRAY") != (self.in_channels == 1):
            raise SpecError("spec field 'color_order' must be 'GRAY' exactly when in_channels is 1")
        lo, hi = self.value_range
        if not (math.isfinite(lo) and math.isfinite(hi)) or max(abs(lo), abs(hi)) > MAX_VALUE:
            raise SpecError(
                f"spec field 'value_range' must be finite, within +-{MAX_VALUE:g}; got {lo}, {hi}"
            )
        if not lo < hi:
            raise SpecError(
                f"spec field 'value_range' must be (low, high) with low < high, got {lo}, {hi}"
            )
        if not 1 <= self.pad_multiple <= MAX_PAD_MULTIPLE:
            raise SpecError(
                f"spec field 'pad_multiple' must be in 1..{MAX_PAD_MULTIPLE}, "
                f"got {self.pad_multiple}"
            )
        rf = self.receptive_field
        if rf is not None and not 1 <= rf <= MAX_RECEPTIVE_FIELD:
            raise SpecError(
                f"spec field 'receptive_field' must be in 1..{MAX_RECEPTIVE_FIELD} or null, "
                f"got {rf}"
            )
        if self.tiled_max_lsb is not None and not 0.0 <= self.tiled_max_lsb <= 255.0:
            raise SpecError(
                f"spec field 'tiled_max_lsb' must be in 0..255 or null, got {self.tiled_max_lsb}"
            )
        _check_degradation(self.degradation)
        if self.version > SPEC_VERSION:
            raise SpecError(
                f"spec version {self.version} is newer than this edgegen reads ({SPEC_VERSION})"
            )

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["value_range"] = list(self.value_range)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> ModelSpec:
        """Build a spec from parsed JSON; unknown or ill-typed fields raise :class:`SpecError`."""
        return _build(cls, data, "spec")

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"spec is not valid JSON: {exc}") from None
        except (RecursionError, UnicodeDecodeError) as exc:  # nested past Python's stack
            raise SpecError(f"spec is not valid JSON: {type(exc).__name__}") from None
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> ModelSpec:
        return dataclasses.replace(self, **changes)


def _check_degradation(described: dict[str, Any]) -> None:
    """An empty dict (not recorded) or one of :data:`DEGRADATIONS` with its parameter."""
    if not described:
        return
    kinds = ", ".join(f"{k} ({p})" for k, p in DEGRADATIONS.items())
    kind = described.get("kind")
    if kind not in DEGRADATIONS:
        raise SpecError(f"spec field 'degradation' needs a 'kind' of {kinds}; got {described!r}")
    key = DEGRADATIONS[kind]
    value = described.get(key)
    values = value if isinstance(value, (list, tuple)) and len(value) == 2 else [value]
    if not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
        for v in values
    ):
        raise SpecError(
            f"spec field 'degradation' of kind {kind!r} needs {key!r}: a number or "
            f"[low, high]; got {described!r}"
        )
    if kind == "bicubic_downscale" and value not in (2, 3, 4):
        raise SpecError(
            f"spec field 'degradation': bicubic_downscale scale must be 2..4, got {value!r}"
        )


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SpecError(f"spec field {name!r} must be one of {', '.join(choices)}; got {value!r}")


_T = typing.TypeVar("_T")


def _build(cls: type[_T], data: Any, where: str) -> _T:
    if not isinstance(data, dict):
        raise SpecError(f"{where} must be a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SpecError(f"{where} has unknown field(s): {', '.join(unknown)}")
    missing = [
        name
        for name, f in fields.items()
        if name not in data
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise SpecError(f"{where} is missing field(s): {', '.join(missing)}")
    kwargs = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; JSON lists become tuples where so typed."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _coerce(option, value, where)
            except SpecError:
                continue
        raise SpecError(f"{where} has the wrong type: {type(value).__name__} ({value!r})")
    if tp is type(None):
        if value is None:
            return None
        raise SpecError(f"{where} must be null")
    if tp is Any:
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise SpecError(f"{where} must be a list of {len(args)} values, got {value!r}")
        pairs = enumerate(zip(args, value, strict=True))
        return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in pairs)
    if origin is dict:
        if not isinstance(value, dict):
            raise SpecError(f"{where} must be an object, got {type(value).__name__}")
        return {str(k): _coerce(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise SpecError(
                f"{where} must be true or false, got {type(value).__name__} ({value!r})"
            )
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{where} must be a number, got {type(value).__name__} ({value!r})")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{where} must be an integer, got {type(value).__name__} ({value!r})")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise SpecError(f"{where} must be a string, got {type(value).__name__} ({value!r})")
        return value
    raise SpecError(
        f"{where}: unsupported annotation {tp!r}"
    )  # pragma: no cover - programming error
