"""Architectures: residual blocks, the flat ResidualGenerator, the multi-scale ResidualUNet and
the registry of named presets."""

from .blocks import ACTIVATIONS, ResidualBlock
from .registry import FAMILIES, OWN_MODULES, ArchPreset, build, from_spec, get, names, register
from .residual import GeneratorParams, ResidualGenerator
from .unet import ResidualUNet, UNetParams

__all__ = [
    "ACTIVATIONS",
    "FAMILIES",
    "OWN_MODULES",
    "ArchPreset",
    "GeneratorParams",
    "ResidualBlock",
    "ResidualGenerator",
    "ResidualUNet",
    "UNetParams",
    "build",
    "from_spec",
    "get",
    "names",
    "register",
]
