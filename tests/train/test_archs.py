import pytest
import torch

from edgegen.train import archs
from edgegen.train.archs import GeneratorParams, ResidualBlock, ResidualGenerator


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
@pytest.mark.parametrize(("cin", "cout"), [(3, 3), (1, 1), (1, 3), (3, 1)])
def test_output_shape(scale, cin, cout):
    model = ResidualGenerator(channels=4, blocks=1, scale=scale, in_channels=cin, out_channels=cout)
    x = torch.rand(2, cin, 13, 17)
    assert model(x).shape == (2, cout, 13 * scale, 17 * scale)


def test_global_skip_is_the_bicubic_upsampling():
    """With the correction branch silenced, the output is exactly the skip path."""
    model = ResidualGenerator(channels=4, blocks=1, scale=2)
    torch.nn.init.zeros_(model.tail.weight)
    torch.nn.init.zeros_(model.tail.bias)
    x = torch.rand(1, 3, 8, 8)
    expected = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic")
    torch.testing.assert_close(model(x), expected)


def test_init_starts_near_identity():
    torch.manual_seed(0)
    model = archs.build("small")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        correction = model(x) - x
    # The correction branch starts small (ESRGAN-style scaled init), not at zero.
    assert 0 < correction.abs().mean() < 0.5 * x.abs().mean()


@pytest.mark.parametrize(("blocks", "scale"), [(0, 1), (1, 1), (2, 1), (1, 2), (1, 3)])
def test_receptive_field_matches_the_gradient_footprint(blocks, scale):
    model = ResidualGenerator(channels=4, blocks=blocks, scale=scale, act="lrelu").double()
    size = 64
    x = torch.rand(1, 3, size, size, dtype=torch.float64, requires_grad=True)
    out = model(x)
    c = out.shape[-1] // 2
    out[0, :, c, c].sum().backward()
    touched = (x.grad[0].abs().sum(0) > 0).nonzero()
    extent = int((touched[:, 1].max() - touched[:, 1].min()).item()) + 1
    # The bicubic skip (4 taps) is always inside the conv stack's footprint.
    assert extent <= model.receptive_field()
    assert extent >= model.receptive_field() - 1


def test_act_after_add_rectifies_the_block_output():
    block = ResidualBlock(4, act="relu", act_after_add=True)
    x = torch.randn(1, 4, 8, 8)
    assert (block(x) >= 0).all()
    plain = ResidualBlock(4, act="relu", act_after_add=False)
    assert (plain(x) < 0).any()


def test_options_build_the_layers_they_name():
    model = ResidualGenerator(channels=8, blocks=2, act="prelu", batch_norm=True, res_scale=0.2)
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"PReLU", "BatchNorm2d"} <= kinds
    assert all(b.res_scale == 0.2 for b in model.body)


def test_registry_presets_and_duplicates():
    assert {"tiny", "small", "medium"} <= set(archs.names())
    assert (archs.get("small").channels, archs.get("small").blocks) == (32, 8)
    assert (archs.get("medium").channels, archs.get("medium").blocks) == (64, 16)
    with pytest.raises(ValueError, match="already registered"):
        archs.register("small", channels=1, blocks=1)
    with pytest.raises(KeyError, match="unknown arch 'huge'"):
        archs.get("huge")
    model = archs.build("tiny", channels=6)
    assert model.params.channels == 6 and model.params.blocks == archs.get("tiny").blocks


def test_invalid_params_are_refused():
    with pytest.raises(ValueError, match="scale"):
        GeneratorParams(scale=5)
    with pytest.raises(ValueError, match="activation"):
        GeneratorParams(act="gelu")
    with pytest.raises(ValueError, match="in_channels"):
        GeneratorParams(in_channels=2)
