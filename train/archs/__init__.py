"""Architectures: residual blocks, the ResidualGenerator and the registry of named presets."""

from .blocks import ACTIVATIONS, ResidualBlock
from .registry import ArchPreset, build, get, names, register
from .residual import GeneratorParams, ResidualGenerator

__all__ = [
    "ACTIVATIONS",
    "ArchPreset",
    "GeneratorParams",
    "ResidualBlock",
    "ResidualGenerator",
    "build",
    "get",
    "names",
    "register",
]
