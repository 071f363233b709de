"""The SR generator's upsampling layers: the bicubic skip as a fixed convolution equals
F.interpolate's bicubic, the ReLU-before-shuffle upsampler equals the original order, neither
changes the state dict, and the export carries no cubic Resize."""

from __future__ import annotations

import collections
import copy

import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgegen.export.onnx_export import export_fp32
from edgegen.train.archs import ResidualGenerator
from edgegen.train.archs.upsample import BicubicUpsample, SubPixelConv, phase_filters
from edgegen.train.config import TrainConfig
from edgegen.train.trainer import make_spec


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize(("channels", "height", "width"), [(3, 37, 53), (1, 5, 4), (3, 1, 2)])
def test_bicubic_upsample_equals_interpolate(scale: int, channels: int, height: int, width: int):
    torch.manual_seed(scale)
    # Values well outside [0, 1] too: the borders' clamping and the negative lobes both show.
    x = torch.randn(2, channels, height, width) * 3
    expected = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    got = BicubicUpsample(scale, channels)(x)
    assert got.shape == expected.shape
    # PyTorch computes x3's source coordinates with a float32 1/3, off by ~1e-7 per output
    # pixel of distance from the origin; the filters here are exact (float64, then rounded once).
    # At these sizes that is ~5e-6 of the values' size (for [0, 1] images, ~0.001 of an LSB).
    torch.testing.assert_close(got, expected, atol=1e-5 * float(x.abs().max()), rtol=0)


def test_phase_filters_sum_to_one_and_hit_the_pixel_when_aligned():
    for scale in (2, 3, 4):
        assert phase_filters(scale).sum(axis=1) == pytest.approx([1.0] * scale)
    # x3's middle phase sits exactly on the input pixel: the identity filter.
    assert list(phase_filters(3)[1]) == pytest.approx([0, 0, 1, 0, 0])


@pytest.mark.parametrize("act", ["relu", "lrelu", "prelu"])
def test_subpixel_conv_equals_shuffle_then_activation(act: str):
    torch.manual_seed(0)
    model = ResidualGenerator(channels=4, blocks=1, scale=2, act=act)
    assert isinstance(model.upsample, SubPixelConv)
    with torch.no_grad():
        if act == "prelu":  # distinct slopes, so a wrong channel order would show
            model.upsample[2].weight.copy_(torch.linspace(-0.5, 0.5, 4))
    x = torch.randn(1, 4, 9, 7)
    reference = nn.Sequential(*model.upsample)  # conv -> shuffle -> act, in that order
    torch.testing.assert_close(model.upsample(x), reference(x), atol=1e-6, rtol=0)


def test_state_dict_keys_are_unchanged():
    """Checkpoints written before these layers load as they are: same keys, no new ones."""
    model = ResidualGenerator(channels=4, blocks=1, scale=2, act="prelu")
    keys = set(model.state_dict())
    assert {"upsample.0.weight", "upsample.0.bias", "upsample.2.weight"} <= keys
    assert not any(k.startswith("skip_upsample") for k in keys)
    clone = ResidualGenerator(channels=4, blocks=1, scale=2, act="prelu")
    clone.load_state_dict(copy.deepcopy(model.state_dict()))  # strict


def test_export_has_no_cubic_resize():
    cfg = TrainConfig(arch="tiny", task="sr", scale=2)
    model = ResidualGenerator(channels=4, blocks=1, scale=2).eval()
    proto, _ = export_fp32(model, make_spec(cfg, model))
    ops = collections.Counter(n.op_type for n in proto.graph.node)
    assert ops["Resize"] == 0
    assert ops["DepthToSpace"] == 2  # the upsampler's and the skip's
    skip = [n for n in proto.graph.node if n.name.startswith("/skip_upsample/")]
    assert {n.op_type for n in skip} >= {"Pad", "Conv", "DepthToSpace"}
    assert onnx.checker.check_model(proto) is None
