"""ResidualGenerator: conv head -> N residual blocks -> conv -> [PixelShuffle] + global skip."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from .blocks import ResidualBlock, check_io, conv3x3, init_near_identity, make_activation
from .upsample import global_skip, sr_upsamplers


@dataclass(frozen=True)
class GeneratorParams:
    """Every architecture parameter; stored in the spec so the runtime and export can rebuild it."""

    channels: int = 32
    blocks: int = 8
    scale: int = 1
    in_channels: int = 3
    out_channels: int = 3
    act: str = "relu"
    batch_norm: bool = False
    res_scale: float = 1.0
    act_after_add: bool = False

    def __post_init__(self) -> None:
        if self.channels < 1 or self.blocks < 0:
            raise ValueError(
                f"channels must be >= 1 and blocks >= 0 (got {self.channels}, {self.blocks})"
            )
        check_io(self.scale, self.in_channels, self.out_channels, self.act)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ResidualGenerator(nn.Module):
    """A residual image-to-image generator (denoising, JPEG removal, x2/x3/x4 super-resolution).

    The network predicts a correction that is added to the input (or, for super-resolution, to a
    bicubic upsampling of it), so at initialisation it is close to the identity and only has to
    learn the residual: the degradation to remove.
    """

    arch_name = "residual_generator"

    def __init__(self, params: GeneratorParams | None = None, **kwargs: Any) -> None:
        super().__init__()
        p = params if params is not None else GeneratorParams(**kwargs)
        self.params = p
        c = p.channels
        self.head = conv3x3(p.in_channels, c)
        self.body = nn.Sequential(
            *[
                ResidualBlock(c, p.act, p.batch_norm, p.res_scale, p.act_after_add)
                for _ in range(p.blocks)
            ]
        )
        self.body_tail = conv3x3(c, c)
        self.upsample, self.skip_upsample = sr_upsamplers(
            c, p.scale, make_activation(p.act, c), p.in_channels
        )
        self.tail = conv3x3(c, p.out_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        # Kaiming init (fan_in, matched to ReLU-family nonlinearities) keeps activations at unit
        # scale through the head; inside each residual branch and at the output the weights are
        # scaled by 0.1 (as ESRGAN/BasicSR do) so that every block, and the network as a whole,
        # starts near the identity. Without BN this is what lets a deep residual stack train at
        # a high learning rate from step one.
        init_near_identity(self, lambda name: name.startswith("body.") or name == "tail")

    def skip(self, x: torch.Tensor) -> torch.Tensor:
        """The global skip: the input, upsampled for SR and mapped to the output channels."""
        return global_skip(x, self.skip_upsample, self.params.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head(x)
        feat = feat + self.body_tail(self.body(feat))
        return self.tail(self.upsample(feat)) + self.skip(x)

    def receptive_field(self) -> int:
        """Receptive field in input pixels: every 3x3 conv at input resolution adds 2.

        head + 2 per block + body_tail + (tail for scale 1, or the sub-pixel conv for SR, whose
        tail then runs at output resolution and adds 2 output pixels = 2/scale input pixels).
        """
        p = self.params
        rf = 1 + 2 * (3 + 2 * p.blocks)
        if p.scale > 1:
            rf += math.ceil(2 / p.scale)
        return rf
