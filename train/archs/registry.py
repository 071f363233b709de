"""Named architecture presets. Registering a name twice is an error, never a silent override."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .residual import GeneratorParams, ResidualGenerator


@dataclass(frozen=True)
class ArchPreset:
    name: str
    channels: int
    blocks: int
    description: str


_REGISTRY: dict[str, ArchPreset] = {}


def register(name: str, channels: int, blocks: int, description: str = "") -> ArchPreset:
    if name in _REGISTRY:
        raise ValueError(f"architecture {name!r} is already registered")
    preset = ArchPreset(name, channels, blocks, description)
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


def build(name: str, **overrides: Any) -> ResidualGenerator:
    """Build a preset; ``overrides`` (channels, blocks, scale, act, ...) take precedence."""
    preset = get(name)
    params: dict[str, Any] = {"channels": preset.channels, "blocks": preset.blocks}
    params.update({k: v for k, v in overrides.items() if v is not None})
    return ResidualGenerator(GeneratorParams(**params))


register("tiny", channels=4, blocks=1, description="a few channels, one block: for tests")
register("small", channels=32, blocks=8, description="32 channels, 8 blocks: the edge default")
register("medium", channels=64, blocks=16, description="64 channels, 16 blocks: SRResNet's size")
