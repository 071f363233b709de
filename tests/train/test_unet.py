"""The multi-scale residual U-Net: shapes, its receptive field, its padding, its options, and
that edgegen's checkpoints, validation and export take it like the flat generator."""

import json

import numpy as np
import pytest
import torch

from edgegen.runtime.errors import EdgegenError
from edgegen.train import archs
from edgegen.train.archs import ResidualUNet, UNetParams
from edgegen.train.config import TrainConfig
from edgegen.train.validate import run_padded


@pytest.mark.parametrize("scale", [1, 2, 3])
@pytest.mark.parametrize(("cin", "cout"), [(3, 3), (1, 1), (1, 3)])
def test_output_shape_at_multiples_of_the_pad_multiple(scale, cin, cout):
    model = ResidualUNet(
        channels=4, blocks=1, levels=3, scale=scale, in_channels=cin, out_channels=cout
    )
    assert model.pad_multiple == 4
    x = torch.rand(2, cin, 12, 20)
    assert model(x).shape == (2, cout, 12 * scale, 20 * scale)


def test_run_padded_takes_any_size_and_matches_a_multiple_size_input_in_the_interior():
    torch.manual_seed(0)
    model = ResidualUNet(channels=4, blocks=1, levels=3).eval()
    x = torch.rand(1, 3, 37, 53)
    with torch.no_grad():
        y = run_padded(model, x, 1)
    assert y.shape == x.shape
    # The padding is reflected at the bottom and right, as the runtime pads (model_io).
    padded = torch.nn.functional.pad(x, (0, 3, 0, 3), mode="reflect")
    with torch.no_grad():
        torch.testing.assert_close(y, model(padded)[..., :37, :53])


def test_the_widths_double_per_level():
    assert UNetParams(channels=16, levels=4).widths() == [16, 32, 64, 128]
    assert UNetParams(channels=300, levels=3).widths() == [300, 512, 512]


@pytest.mark.parametrize(("levels", "blocks"), [(2, 1), (3, 1), (3, 2)])
def test_receptive_field_bounds_the_gradient_footprint(levels, blocks):
    """Every output pixel depends on no input pixel outside the analytic field, and the field
    is not wildly larger than what the gradients show (the strided layers' phases aside)."""
    torch.manual_seed(0)
    model = ResidualUNet(channels=4, blocks=blocks, levels=levels, act="lrelu").double()
    side = 256
    x = torch.rand(1, 3, side, side, dtype=torch.float64, requires_grad=True)
    out = model(x)
    c = side // 2
    out[0, :, c, c].sum().backward()
    touched = (x.grad[0].abs().sum(0) > 0).nonzero()
    reach = max(c - int(touched[:, 1].min()), int(touched[:, 1].max()) - c)
    assert 2 * reach + 1 <= model.receptive_field()
    assert 2 * reach + 1 >= model.receptive_field() // 2


def test_init_starts_near_identity():
    torch.manual_seed(0)
    model = archs.build("unet")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        correction = model(x) - x
    assert 0 < correction.abs().mean() < 0.5 * x.abs().mean()


def test_registry_builds_unets_and_refuses_flat_only_options():
    model = archs.build("unet", channels=8, levels=2)
    assert isinstance(model, ResidualUNet)
    assert model.params.widths() == [8, 16]
    with pytest.raises(ValueError, match="no option batch_norm"):
        archs.build("unet", batch_norm=True)
    rebuilt = archs.from_spec("residual_unet", json.loads(json.dumps(model.params.to_dict())))
    assert rebuilt.params == model.params


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"arch": "small", "levels": 3}, "--levels applies to U-Net archs"),
        ({"arch": "unet", "batch_norm": True}, "has no --batch-norm"),
        ({"arch": "unet", "levels": 9}, "--levels must be 1 to 6"),
        ({"augment": "flips,sepia"}, "unknown augment 'sepia'"),
    ],
)
def test_config_refuses_what_the_arch_cannot_do(options, message):
    with pytest.raises(EdgegenError, match=message):
        TrainConfig(**options).validate()


def test_train_export_and_tile_a_unet(tmp_path):
    """A few steps of the tiny U-Net through `edgegen train` and `edgegen export`: the
    checkpoint rebuilds it, the spec carries its pad multiple and receptive field, fp32 and int8
    pass verification, and tiles overlapping by the field give the whole image's output."""
    from clitools import run_edgegen

    from edgegen.runtime.generator import Generator
    from edgegen.train.checkpoint import load_model

    run, out = tmp_path / "run", tmp_path / "export"
    proc = run_edgegen(
        "train", "--arch", "unet-tiny", "--steps", "4", "--val-every", "4", "--patch", "32",
        "--batch", "4", "--workers", "0", "--augment", "flips,channels,gamma,dark",
        "--out", str(run), "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    model, spec, _ = load_model(run)
    assert isinstance(model, ResidualUNet)
    assert spec.pad_multiple == 4 and spec.receptive_field == model.receptive_field()
    proc = run_edgegen("export", str(run), "--out", str(out), "--precision", "fp32,int8")
    assert proc.returncode == 0, proc.stderr
    assert "fp32: PASS" in proc.stdout and "int8: PASS" in proc.stdout
    manifest = json.loads((out / "model.fp32.manifest.json").read_text())
    assert manifest["spec"]["arch"] == "residual_unet"
    assert manifest["spec"]["tiled_max_lsb"] == 0.0
    rng = np.random.default_rng(0)
    image = rng.random((150, 203, 3), dtype=np.float32)
    whole = Generator(out / "model.fp32.onnx", tile=0)(image)
    tiled = Generator(out / "model.fp32.onnx", tile=160)(image)
    assert whole.shape == image.shape
    np.testing.assert_allclose(tiled, whole, atol=2e-5)
