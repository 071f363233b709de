"""The multiple a network pads its input to, read off its forward, against paddings written by
hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgegen.export.padding import internal_pad_multiple, output_size_multiple
from edgegen.runtime.spec import ModelSpec

SPEC = ModelSpec(task="denoise", degradation={"kind": "gaussian_noise", "sigma": 25.0})


class Padded(nn.Module):
    """Pads to ``multiple`` plus ``margin`` on every side (reflect), convolves, crops back."""

    def __init__(self, multiple: int, margin: int, crop: bool = True) -> None:
        super().__init__()
        self.multiple, self.margin, self.crop = multiple, margin, crop
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = -h % self.multiple, -w % self.multiple
        m = self.margin
        y = self.conv(F.pad(x, (m, m + pw, m, m + ph), mode="reflect"))
        y = y[:, :, m : m + h + ph, m : m + w + pw]
        return x + y[:, :, :h, :w] if self.crop else y


@pytest.mark.parametrize(
    ("multiple", "margin", "want"),
    [(8, 0, 8), (64, 0, 64), (2, 18, 2), (4, 6, 4), (1, 5, 1)],
    ids=["window-8", "window-64", "even-plus-margin", "four-plus-margin", "margin-alone"],
)
def test_the_multiple_a_forward_pads_to(multiple: int, margin: int, want: int) -> None:
    torch.manual_seed(0)
    assert internal_pad_multiple(Padded(multiple, margin), SPEC) == want


def test_a_convolutions_own_padding_is_no_multiple() -> None:
    class Explicit(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)

    assert internal_pad_multiple(Explicit(), SPEC) == 1


def test_an_output_left_at_the_padded_size_asks_for_that_multiple() -> None:
    torch.manual_seed(0)
    assert output_size_multiple(Padded(4, 0, crop=False), SPEC) == 4
    assert output_size_multiple(Padded(4, 0), SPEC) == 1


def test_a_pad_of_channels_last_tokens_is_read_too() -> None:
    class Tokens(nn.Module):
        """Pads a ``view(B, H, W, C)`` of its input to a multiple of 8, as FDAT's window
        attention does, then crops back."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            _b, _c, h, w = x.shape
            t = x.permute(0, 2, 3, 1)
            t = F.pad(t, (0, 0, 0, -w % 8, 0, -h % 8))
            return x + 0.5 * t[:, :h, :w].permute(0, 3, 1, 2)

    assert internal_pad_multiple(Tokens(), SPEC) == 8
