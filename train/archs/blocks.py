"""Building blocks of the residual generator."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

ACTIVATIONS = ("relu", "prelu", "lrelu")


def check_io(scale: int, in_channels: int, out_channels: int, act: str) -> None:
    """What every generator's params must hold: a supported scale, RGB or gray in and out, and a
    known activation (ValueError naming the field otherwise)."""
    if scale not in (1, 2, 3, 4):
        raise ValueError(f"scale must be 1, 2, 3 or 4, got {scale}")
    if in_channels not in (1, 3) or out_channels not in (1, 3):
        raise ValueError("in_channels and out_channels must each be 1 or 3")
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; choose from {', '.join(ACTIVATIONS)}")


def make_activation(name: str, channels: int) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "prelu":
        return nn.PReLU(channels)
    if name == "lrelu":
        return nn.LeakyReLU(0.2, inplace=True)
    raise ValueError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")


def init_near_identity(model: nn.Module, is_branch: Callable[[str], bool]) -> None:
    """Kaiming init (fan_in, matched to ReLU-family nonlinearities) for every conv, zero biases,
    and the convs ``is_branch`` names (by module name) scaled by 0.1, as ESRGAN/BasicSR do, so
    that every residual branch, and the network as a whole, starts near the identity."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, a=0.0, mode="fan_in", nonlinearity="relu")
            if is_branch(name):
                module.weight.data.mul_(0.1)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def conv3x3(in_channels: int, out_channels: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=bias)


class ResidualBlock(nn.Module):
    """``y = x + s * F(x)`` with ``F = conv -> [bn] -> act -> conv -> [bn]``.

    ``act_after_add`` applies the activation after the addition (the original SRResNet-style
    variant of the seed network); EDSR showed that leaving the sum un-activated and scaling the
    branch by ``res_scale`` trains deeper stacks more stably, so that is the default.
    """

    def __init__(
        self,
        channels: int,
        act: str = "relu",
        batch_norm: bool = False,
        res_scale: float = 1.0,
        act_after_add: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv3x3(channels, channels, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(channels))
        layers.append(make_activation(act, channels))
        layers.append(conv3x3(channels, channels, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(channels))
        self.body = nn.Sequential(*layers)
        self.res_scale = res_scale
        self.post_act = make_activation(act, channels) if act_after_add else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.res_scale != 1.0:
            out = out * self.res_scale
        out = x + out
        if self.post_act is not None:
            out = self.post_act(out)
        return out
