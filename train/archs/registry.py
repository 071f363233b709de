"""Named architecture presets. Registering a name twice is an error, never a silent override.

A preset names a family (the flat :class:`ResidualGenerator` or the multi-scale
:class:`ResidualUNet`) and its size; :data:`FAMILIES` maps each family's spec name (the spec's
``arch``) to its class and parameter dataclass, so a checkpoint or an export rebuilds the network
from its spec alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from .residual import GeneratorParams, ResidualGenerator
from .unet import ResidualUNet, UNetParams

# spec arch name -> (module class, its parameters)
FAMILIES: dict[str, tuple[type[nn.Module], type[Any]]] = {
    ResidualGenerator.arch_name: (ResidualGenerator, GeneratorParams),
    ResidualUNet.arch_name: (ResidualUNet, UNetParams),
}
OWN_MODULES = (ResidualGenerator, ResidualUNet)


@dataclass(frozen=True)
class ArchPreset:
    name: str
    channels: int
    blocks: int
    description: str
    family: str = ResidualGenerator.arch_name
    levels: int | None = None  # residual_unet only


_REGISTRY: dict[str, ArchPreset] = {}


def register(
    name: str,
    channels: int,
    blocks: int,
    description: str = "",
    family: str = ResidualGenerator.arch_name,
    levels: int | None = None,
) -> ArchPreset:
    if name in _REGISTRY:
        raise ValueError(f"architecture {name!r} is already registered")
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
    preset = ArchPreset(name, channels, blocks, description, family, levels)
    _REGISTRY[name] = preset
    return preset


def get(name: str) -> ArchPreset:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown arch {name!r}; choose from {', '.join(sorted(_REGISTRY))}"
        ) from None


def names() -> list[str]:
    return sorted(_REGISTRY)


def build(name: str, **overrides: Any) -> Any:
    """Build a preset; ``overrides`` (channels, blocks, levels, scale, act, ...) take precedence.
    Overrides the family has no parameter for must be None (or its default)."""
    preset = get(name)
    cls, params_cls = FAMILIES[preset.family]
    params: dict[str, Any] = {"channels": preset.channels, "blocks": preset.blocks}
    if preset.levels is not None:
        params["levels"] = preset.levels
    params.update({k: v for k, v in overrides.items() if v is not None})
    known = set(params_cls.__dataclass_fields__)
    defaults = {"batch_norm": False, "res_scale": 1.0, "act_after_add": False}
    unsupported = [k for k in params if k not in known and params[k] != defaults.get(k, object())]
    if unsupported:
        raise ValueError(f"arch {name} ({preset.family}) has no option {', '.join(unsupported)}")
    return cls(params_cls(**{k: v for k, v in params.items() if k in known}))


def from_spec(arch: str, arch_params: dict[str, Any]) -> nn.Module:
    """The network a spec describes (``arch`` a family name): raises KeyError for an unknown
    family and TypeError/ValueError for parameters it does not take."""
    cls, params_cls = FAMILIES[arch]
    return cls(params_cls(**arch_params))


register("tiny", channels=4, blocks=1, description="a few channels, one block: for tests")
register("small", channels=32, blocks=8, description="32 channels, 8 blocks: the edge default")
register("medium", channels=64, blocks=16, description="64 channels, 16 blocks: SRResNet's size")
register(
    "unet-tiny",
    channels=4,
    blocks=1,
    levels=3,
    family=ResidualUNet.arch_name,
    description="a multi-scale residual U-Net of a few channels: for tests",
)
register(
    "unet",
    channels=16,
    blocks=1,
    levels=4,
    family=ResidualUNet.arch_name,
    description="multi-scale residual U-Net, widths 16-128, 4 levels: a receptive field of "
    "hundreds of pixels",
)
