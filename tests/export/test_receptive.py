"""The receptive field export measures, against fields worked out by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgegen.export import receptive
from edgegen.export.receptive import measure_receptive_field
from edgegen.runtime.spec import ModelSpec

SPEC = ModelSpec(task="denoise", degradation={"kind": "gaussian_noise", "sigma": 25.0})


@pytest.fixture(autouse=True, params=["gradient", "perturbation"])
def method(request, monkeypatch):
    """Every field twice: from input gradients, and by perturbing the input (the way a network
    autograd cannot differentiate is measured)."""
    if request.param == "perturbation":

        def undifferentiable(*args: object) -> None:
            raise RuntimeError("one of the variables needed for gradient computation ...")

        monkeypatch.setattr(receptive, "_gradient_support", undifferentiable)
    return request.param


def test_three_convolutions_see_seven_pixels():
    torch.manual_seed(0)
    net = nn.Sequential(*(nn.Conv2d(3, 3, 3, padding=1) for _ in range(3)))
    field = measure_receptive_field(net, SPEC)
    assert (field.receptive_field, field.global_field) == (7, False)


def test_a_dilated_convolution():
    torch.manual_seed(0)
    field = measure_receptive_field(nn.Conv2d(3, 3, 3, padding=4, dilation=4), SPEC)
    assert field.receptive_field == 9


class Cells(nn.Module):
    """Pixels pooled in 7x7 cells, then a 3x3 conv: a pixel inside a cell sees that cell, one on
    a cell's first column the previous cell too, 7 pixels back (a field 2 * 7 + 1 wide). Window
    attention's field depends on the position in the window the same way."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        cells = F.avg_pool2d(x, 7, 7, ceil_mode=True)
        up = F.interpolate(cells, scale_factor=7.0, mode="nearest")[:, :, :h, :w]
        return x + self.conv(up)


def test_the_field_is_the_widest_over_positions_in_a_window():
    torch.manual_seed(0)
    field = measure_receptive_field(Cells(), SPEC)
    assert field.receptive_field == 15  # the centre pixel (inside a cell) alone sees 7


def test_a_field_through_global_pooling_is_global():
    class Pooled(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + x.mean(dim=(2, 3), keepdim=True)

    field = measure_receptive_field(Pooled(), SPEC)
    assert field.global_field and field.receptive_field is None


def test_an_upscalers_field_is_in_input_pixels():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 12, 5, padding=2), nn.PixelShuffle(2))
    spec = SPEC.replace(task="sr", scale=2, degradation={"kind": "bicubic_downscale", "scale": 2})
    assert measure_receptive_field(net, spec).receptive_field == 5


class InPlace(nn.Module):
    """Three 3x3 convolutions, the second written in place into the first's sigmoid (which
    autograd saves), as PLKSR's inference path does: autograd refuses the backward."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(1, 1, 3, padding=1)
        self.c = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.sigmoid(self.a(x))
        h[:, :1] = self.b(h[:, :1])
        return x + self.c(h)


def test_a_forward_autograd_cannot_differentiate_is_measured_by_perturbation(method):
    torch.manual_seed(0)
    if method == "gradient":  # the real refusal, not the monkeypatched one
        x = torch.rand(1, 3, 8, 8, requires_grad=True)
        with pytest.raises(RuntimeError, match="inplace"):
            InPlace()(x).sum().backward()
    assert measure_receptive_field(InPlace(), SPEC).receptive_field == 7
