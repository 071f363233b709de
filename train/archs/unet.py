"""ResidualUNet: a multi-scale residual generator (DRUNet's shape, without its noise-level map).

head conv -> [residual blocks -> strided 2x2 conv] per level -> residual blocks at the coarsest
level -> [1x1 conv + pixel shuffle, add the level's features, residual blocks] back up -> tail
conv, plus the global skip ``y = x + F(x)`` (for super-resolution, a bicubic upsampling of x).

Widths double at each level while the pixels quarter, so every level costs about the same per
input pixel as the first: four levels cost what a flat stack of the same depth costs, but the
receptive field grows with the stride (hundreds of pixels instead of tens). That is what a
denoiser needs to tell a dark, flat background from noise, and what a flat stack of 3x3
convolutions at one resolution cannot see.

Only convolutions, ReLU-family activations, additions and pixel (un)shuffles: every op
quantizes to int8 in onnxruntime's QDQ format and exports with the trace. The levels' upsampling
is a 1x1 convolution to 4x the channels and a pixel shuffle: the same function as DRUNet's 2x2
transposed convolution of stride 2, in ops that onnxruntime quantizes and runs fast on a CPU.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from .blocks import ResidualBlock, check_io, conv3x3, init_near_identity, make_activation
from .upsample import global_skip, sr_upsamplers

MAX_WIDTH = 512  # widths stop doubling here


@dataclass(frozen=True)
class UNetParams:
    """Every architecture parameter; stored in the spec so export can rebuild the network."""

    channels: int = 16  # width of the first level; each level below doubles it
    blocks: int = 1  # residual blocks per level on each side (twice that at the coarsest)
    levels: int = 4  # resolutions, the input's included: input sides pad to 2**(levels-1)
    scale: int = 1
    in_channels: int = 3
    out_channels: int = 3
    act: str = "relu"

    def __post_init__(self) -> None:
        if self.channels < 1 or self.blocks < 0:
            raise ValueError(
                f"channels must be >= 1 and blocks >= 0 (got {self.channels}, {self.blocks})"
            )
        if not 1 <= self.levels <= 6:
            raise ValueError(f"levels must be 1 to 6, got {self.levels}")
        check_io(self.scale, self.in_channels, self.out_channels, self.act)

    def widths(self) -> list[int]:
        return [min(MAX_WIDTH, self.channels * 2**level) for level in range(self.levels)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _stage(channels: int, blocks: int, act: str) -> nn.Sequential:
    return nn.Sequential(*[ResidualBlock(channels, act) for _ in range(blocks)])


class ResidualUNet(nn.Module):
    """A multi-scale residual generator; see the module docstring."""

    arch_name = "residual_unet"

    def __init__(self, params: UNetParams | None = None, **kwargs: Any) -> None:
        super().__init__()
        p = params if params is not None else UNetParams(**kwargs)
        self.params = p
        widths = p.widths()
        self.head = conv3x3(p.in_channels, widths[0])
        self.encoders = nn.ModuleList(_stage(w, p.blocks, p.act) for w in widths[:-1])
        self.downs = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], kernel_size=2, stride=2)
            for i in range(p.levels - 1)
        )
        self.bottom = _stage(widths[-1], 2 * p.blocks, p.act)
        self.ups = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(widths[i + 1], 4 * widths[i], kernel_size=1), nn.PixelShuffle(2)
            )
            for i in range(p.levels - 1)
        )
        self.decoders = nn.ModuleList(_stage(w, p.blocks, p.act) for w in widths[:-1])
        c = widths[0]
        self.upsample, self.skip_upsample = sr_upsamplers(
            c, p.scale, make_activation(p.act, c), p.in_channels
        )
        self.tail = conv3x3(c, p.out_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        # As ResidualGenerator does (see there): Kaiming at unit scale, every residual branch and
        # the tail scaled by 0.1 so that the network starts near the identity. The up-convs are
        # branches too (each adds onto its level's features): unscaled, the sum of four levels
        # put the initial output 1.1 away from the input (std), against 0.2 scaled.
        init_near_identity(
            self, lambda name: ".body." in name or name.startswith("ups.") or name == "tail"
        )

    @property
    def pad_multiple(self) -> int:
        """Input sides must be multiples of this (each level halves them)."""
        return int(2 ** (self.params.levels - 1))

    def skip(self, x: torch.Tensor) -> torch.Tensor:
        """The global skip: the input, upsampled for SR and mapped to the output channels."""
        return global_skip(x, self.skip_upsample, self.params.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head(x)
        skips = []
        h = feat
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            h = encoder(h)
            skips.append(h)
            h = down(h)
        h = self.bottom(h)
        for level in reversed(range(len(self.ups))):
            h = self.decoders[level](self.ups[level](h) + skips[level])
        return self.tail(self.upsample(h + feat)) + self.skip(x)

    def receptive_field(self) -> int:
        """Receptive field in input pixels, an upper bound from the layers' kernels and strides:
        twice the reach plus one, where a 3x3 conv at stride s (input pixels per feature pixel)
        reaches s further, and a 2x2 stride-2 conv or a pixel shuffle at stride s reaches up to s
        (a pixel's offset within its coarser pixel). Export measures it again from gradients
        and records what it finds."""
        p = self.params
        reach = 1  # head
        stride = 1
        for _ in range(p.levels - 1):
            reach += 2 * p.blocks * stride + stride  # the level's blocks, then the down conv
            stride *= 2
        reach += 2 * 2 * p.blocks * stride  # the coarsest level's blocks
        for _ in range(p.levels - 1):
            stride //= 2
            reach += stride + 2 * p.blocks * stride  # the shuffle, then the level's blocks
        reach += 1  # tail (a scale-1 model) or the sub-pixel conv
        if p.scale > 1:
            reach += math.ceil(1 / p.scale)  # the tail at the output resolution
        return 2 * reach + 1
