"""Networks users bring, written here as a user would write them: a U-Net of their own exported
from a saved state dict with ``--module``, and the cases that used to break export (a shape the
trace bakes in, a batch of one, a bias shared with a LayerNorm, a symbolic channel count, a
global receptive field)."""

from __future__ import annotations

import json
import textwrap
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from clitools import assert_one_line_error, run_edgegen
from tinymodels import photo
from torch import nn

from edgegen.export.transaction import ExportConfig, VerificationFailed, export_module
from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.generator import Generator, TilingWarning
from edgegen.runtime.spec import ModelSpec

FAST = {"calib_count": 4, "progress": False}

UNET = textwrap.dedent(
    '''
    import torch
    from torch import nn


    class UNet(nn.Module):
        """Two scales, a skip over the downsampling, and an extra argument with a default."""

        def __init__(self):
            super().__init__()
            self.head = nn.Conv2d(3, 12, 3, padding=1)
            self.down = nn.Conv2d(12, 24, 3, stride=2, padding=1)
            self.mid = nn.Conv2d(24, 24, 3, padding=1)
            self.up = nn.ConvTranspose2d(24, 12, 2, stride=2)
            self.tail = nn.Conv2d(24, 3, 3, padding=1)

        def forward(self, x, alpha: float = 1.0):
            a = torch.relu(self.head(x))
            b = torch.relu(self.mid(torch.relu(self.down(a))))
            return x + alpha * self.tail(torch.cat([a, self.up(b)], 1))


    def make():
        return UNet()


    def not_a_module():
        return {"conv": 1}


    def crops():
        return nn.Conv2d(3, 5, 3, padding=1)
    '''
)


def a_photo() -> np.ndarray:
    """A crop of a real held-out photo (rocket: never trained or calibrated on), float RGB."""
    return np.asarray(photo(1)[:150, :190], dtype=np.float32) / 255.0


@pytest.fixture(scope="module")
def unet_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("unet")
    (folder / "unet.py").write_text(UNET)
    torch.manual_seed(0)
    namespace: dict[str, object] = {}
    exec(compile(UNET, "unet.py", "exec"), namespace)
    torch.save(namespace["make"]().state_dict(), folder / "unet.pth")  # type: ignore[operator]
    return folder


def test_a_users_unet_exports_from_its_state_dict(unet_dir, tmp_path):
    out = tmp_path / "out"
    proc = run_edgegen(
        "export", "--module", "unet.py:make", "--weights", "unet.pth", "--out", str(out),
        "--precision", "fp32,fp16,int8", "--calib-count", "4", "--no-progress", cwd=unet_dir,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "exporter dynamo" in proc.stdout
    manifest = json.loads((out / "model.int8.manifest.json").read_text())
    spec = manifest["spec"]
    # Found by running it: the skip over one downsampling needs sizes that are even.
    assert (
        spec["pad_multiple"] == 2 and spec["scale"] == 1 and spec["arch"] == "module:unet.py:make"
    )
    assert spec["degradation"] == {"kind": "gaussian_noise", "sigma": 25.0}
    assert 7 <= spec["receptive_field"] <= 40 and spec["global_field"] is False
    assert manifest["export"]["exporter"] == "dynamo"
    assert spec["tiled_max_lsb"] <= 1.0
    # The graph has one input (alpha kept at its default), channel counts concrete.
    graph = onnx.load(str(out / "model.fp32.onnx")).graph
    assert [i.name for i in graph.input] == ["input"]
    assert graph.output[0].type.tensor_type.shape.dim[1].dim_value == 3
    for precision in ("fp32", "fp16", "int8"):
        verified = run_edgegen("verify", str(out / f"model.{precision}.onnx"))
        assert verified.returncode == 0, verified.stdout + verified.stderr
    photo = a_photo()[:149, :187]  # odd sizes: the runtime pads to the pad multiple
    g_whole = Generator(out / "model.fp32.onnx", "cpu", tile=0)
    g_tiled = Generator(out / "model.fp32.onnx", "cpu", tile=64)
    whole, tiled = g_whole(photo), g_tiled(photo)
    assert whole.shape == photo.shape
    assert float(np.abs(whole - tiled).max()) * 255 <= 1.0


def test_a_network_whose_field_is_global_is_not_tiled_unless_asked(tmp_path):
    from test_export import UserNet  # ReflectionPad + InstanceNorm + nearest Upsample

    torch.manual_seed(0)
    net = UserNet()
    with torch.no_grad():
        net.norm.weight.uniform_(0.5, 1.5)
        net.norm.bias.uniform_(-0.2, 0.2)
    spec = ModelSpec(task="denoise", degradation={"kind": "gaussian_noise", "sigma": 25.0})
    export_module(net, spec, ExportConfig(out=str(tmp_path), **FAST))
    path = tmp_path / "model.fp32.onnx"
    saved = Generator(path, "cpu").spec
    assert saved.global_field and saved.receptive_field is None
    assert saved.tiled_max_lsb is not None and saved.tiled_max_lsb > 1.0  # tiles do change it
    big = np.random.default_rng(0).random((1100, 1000, 3), dtype=np.float32)
    auto = Generator(path, "cpu")  # tile=None: would tile a 1.1 MP image, but not this model
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(auto(big), Generator(path, "cpu", tile=0)(big))
    asked = Generator(path, "cpu", tile=256)
    with pytest.warns(TilingWarning, match=r"global receptive field.*up to [0-9.]+ LSB"):
        asked(big[:300, :300])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asked(big[:300, :300])  # once per Generator


def stripes(h: int, w: int) -> torch.Tensor:
    return ((torch.arange(h) // 4) % 2).float().view(1, 1, h, 1).expand(1, 1, h, w)


class BakedShape(nn.Module):
    """Keeps a mask for the size it was built for and computes it for any other, as window
    attention does (SwinIR's attn_mask): the trace takes the branch of the trace size and
    records its 64x64 mask as a constant."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mask", stripes(64, 64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        mask = self.mask if (h, w) == (64, 64) else stripes(h, w)
        return x + 0.1 * mask


def _spec(**changes: object) -> ModelSpec:
    return ModelSpec(task="denoise", **changes)  # type: ignore[arg-type]


def test_a_traced_shape_is_a_failed_export_naming_the_size_and_dynamo_exports_it(tmp_path):
    torch.manual_seed(0)
    net = BakedShape()
    with pytest.raises(EdgegenError, match=r"graph fails on onnxruntime at 29x41") as failed:
        export_module(
            net,
            _spec(),
            ExportConfig(out=str(tmp_path / "t"), exporter="trace", **FAST),
        )
    assert failed.value.exit_code == 1 and "\n" not in str(failed.value)
    assert not list((tmp_path / "t").glob("model.*"))
    result = export_module(net, _spec(), ExportConfig(out=str(tmp_path / "d"), **FAST))
    assert result.artifacts[0].report is not None and result.artifacts[0].report.passed
    manifest = json.loads((tmp_path / "d" / "model.fp32.manifest.json").read_text())
    assert manifest["export"]["exporter"] == "dynamo"


class NoiseMapForOne(nn.Module):
    """A noise-level map made for a batch of one, as some denoisers' wrappers make it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        level = torch.zeros(1, 1, x.shape[2], x.shape[3]) + 0.1
        return x + self.conv(torch.cat([x, level], dim=1))


def test_a_network_for_a_batch_of_one_exports_with_its_batch_fixed_and_runs_one_by_one(tmp_path):
    torch.manual_seed(0)
    net = NoiseMapForOne()
    result = export_module(net, _spec(), ExportConfig(out=str(tmp_path), **FAST))
    assert result.artifacts[0].report is not None and result.artifacts[0].report.passed
    manifest = json.loads((tmp_path / "model.fp32.manifest.json").read_text())
    assert manifest["export"]["batch"].startswith("1 (at a batch of 2, its graph fails at 2x")
    graph = onnx.load(str(tmp_path / "model.fp32.onnx"))
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    # The runtime splits a batch into single images for such a graph.
    crops = [a_photo()[:29, :37], a_photo()[40:69, 50:87]]
    x = np.stack([c.transpose(2, 0, 1) for c in crops])
    got = Generator(str(tmp_path / "model.fp32.onnx")).infer(x)
    with torch.no_grad():
        want = np.concatenate([net(torch.from_numpy(x[i : i + 1].copy())).numpy() for i in (0, 1)])
    assert got.shape == want.shape and float(np.abs(got - want).max()) < 1e-4


class BatchMean(nn.Module):
    """Each image shifted by the mean over the batch: a batch is not its images alone. With
    ``bright``, every pixel is far above white, where the shift is invisible."""

    def __init__(self, bright: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.offset = 10.0 if bright else 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.offset + self.conv(x) + 0.05 * x.mean(dim=0, keepdim=True)


def test_a_graph_that_mixes_the_images_of_a_batch_is_a_failed_export(tmp_path):
    torch.manual_seed(0)
    config = ExportConfig(out=str(tmp_path), exporter="trace", **FAST)
    with pytest.raises(VerificationFailed) as failed:
        export_module(BatchMean(bright=False), _spec(), config)
    assert [f for f in failed.value.failures if f.startswith("fp32 at batch 2: ")], failed.value
    assert "differently from its images alone (max " in str(failed.value.failures)
    assert not list(tmp_path.glob("model.*"))


def test_the_batch_check_compares_the_images_a_person_sees(tmp_path):
    """Raw outputs far outside [0, 1] that differ between a batch and its images alone, while
    the clipped images are equal: the check passes, as verification does."""
    torch.manual_seed(0)
    config = ExportConfig(out=str(tmp_path), exporter="trace", **FAST)
    result = export_module(BatchMean(bright=True), _spec(), config)
    assert result.artifacts[0].report is not None and result.artifacts[0].report.passed


class SharedBias(nn.Module):
    """A conv and a LayerNorm over channels with equal biases: onnxslim merges them into one
    initializer, which fp16 conversion must still give both types of."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.LayerNorm(8)
        self.out = nn.Conv2d(8, 3, 3, padding=1)
        with torch.no_grad():
            self.conv.bias.fill_(0.05)
            self.norm.bias.fill_(0.05)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x + 0.1 * self.out(torch.relu(h))


def test_fp16_of_a_bias_shared_by_a_conv_and_a_layernorm_loads_and_verifies(tmp_path):
    torch.manual_seed(0)
    config = ExportConfig(out=str(tmp_path), precision=("fp32", "fp16"), **FAST)
    result = export_module(SharedBias(), _spec(), config)
    assert all(a.report is not None and a.report.passed for a in result.artifacts)
    Generator(tmp_path / "model.fp16.onnx", "cpu")(a_photo())


class SlicedChannels(nn.Module):
    """Output channels from a slice: the trace exporter names the channel dimension."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.1 * self.conv(x)[:, : x.shape[1]]


@pytest.mark.parametrize("exporter", ["trace", "dynamo"])
def test_output_channels_are_concrete_so_the_runtime_opens_the_model(tmp_path, exporter):
    torch.manual_seed(0)
    config = ExportConfig(out=str(tmp_path), exporter=exporter, **FAST)
    export_module(SlicedChannels(), _spec(), config)
    dims = onnx.load(str(tmp_path / "model.fp32.onnx")).graph.output[0].type.tensor_type.shape.dim
    assert dims[1].dim_value == 3
    assert run_edgegen("verify", str(tmp_path / "model.fp32.onnx")).returncode == 0


class WindowNet(nn.Module):
    """Window attention's shape logic without the attention: pads to a multiple of 8 in a
    Python branch (as SwinIR, HAT and SCUNet do), mixes each 8x8 window, crops back."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.mix = nn.Linear(64, 64)
        self.out = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (8 - h % 8) % 8, (8 - w % 8) % 8
        y = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="reflect") if ph or pw else x
        f = self.conv(y)
        b, c, hh, ww = f.shape
        win = f.view(b, c, hh // 8, 8, ww // 8, 8).permute(0, 1, 2, 4, 3, 5)
        win = self.mix(win.reshape(b, c, hh // 8, ww // 8, 64)).view(b, c, hh // 8, ww // 8, 8, 8)
        f = win.permute(0, 1, 2, 4, 3, 5).reshape(b, c, hh, ww)
        return x + 0.1 * self.out(f)[:, :, :h, :w]


@pytest.mark.parametrize("exporter", ["trace", "auto"])
def test_a_network_padding_to_its_window_exports_for_every_size(tmp_path, exporter):
    """Either exporter records one side of the padding branch; export reads the multiple off
    the module, so the runtime pads to it and the graph is right at every size."""
    torch.manual_seed(0)
    net = WindowNet().eval()
    config = ExportConfig(out=str(tmp_path), exporter=exporter, **FAST)
    result = export_module(net, _spec(), config)
    assert result.artifacts[0].report is not None and result.artifacts[0].report.passed
    manifest = json.loads((tmp_path / "model.fp32.manifest.json").read_text())
    assert manifest["export"]["internal_pad_multiple"] == 8
    assert manifest["spec"]["pad_multiple"] == 8
    image = a_photo()[:61, :83]  # neither side a multiple of 8
    got = Generator(tmp_path / "model.fp32.onnx", "cpu")(image)
    with torch.no_grad():
        want = net(torch.from_numpy(image.transpose(2, 0, 1)[None].copy()))[0]
    np.testing.assert_allclose(got, want.clamp(0, 1).numpy().transpose(1, 2, 0), atol=1e-4)


class ReflectNet(nn.Module):
    """A reflect-padded conv: the dynamo exporter writes Pad-18, which onnx cannot convert to
    opset 17."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.1 * self.conv(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"))


def test_the_default_opset_is_18_only_where_the_dynamo_graph_cannot_convert(tmp_path):
    torch.manual_seed(0)
    export_module(ReflectNet(), _spec(), ExportConfig(out=str(tmp_path / "a"), **FAST))
    manifest = json.loads((tmp_path / "a" / "model.fp32.manifest.json").read_text())
    assert manifest["export"]["exporter"] == "dynamo"
    assert (manifest["opset"], manifest["export"]["opset"]) == (18, 18)
    assert "does not convert to opset 17" in manifest["export"]["opset_why"]
    # An opset asked for is that opset: auto falls back to the trace, dynamo alone refuses.
    config = ExportConfig(out=str(tmp_path / "b"), opset=17, **FAST)
    export_module(ReflectNet(), _spec(), config)
    manifest = json.loads((tmp_path / "b" / "model.fp32.manifest.json").read_text())
    assert (manifest["opset"], manifest["export"]["exporter"]) == (17, "trace")
    config = ExportConfig(out=str(tmp_path / "c"), exporter="dynamo", opset=17, **FAST)
    with pytest.raises(EdgegenError, match="does not convert to opset 17"):
        export_module(ReflectNet(), _spec(), config)
    assert not list((tmp_path / "c").glob("model.*"))


# ------------------------------------------------------------------------------- bad input


def test_a_module_whose_output_is_not_an_image(unet_dir, tmp_path):
    proc = run_edgegen("export", "--module", "unet.py:crops", "--out", str(tmp_path), cwd=unet_dir)
    assert_one_line_error(proc, "--module unet.py:crops", "5 channels")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--module", "no_such_pkg.models:make"], ("cannot import no_such_pkg.models",)),
        (["--module", "unet.py:missing"], ("has no 'missing'",)),
        (["--module", "unet.py:not_a_module"], ("returned dict, not a torch nn.Module",)),
        (["--module", "unet"], ("use pkg.module:factory",)),
        (["--module", "unet.py:make", "--weights", "nope.pth"], ("nope.pth does not exist",)),
        (["--weights", "unet.pth"], ("--weights goes with --module",)),
        (["--module", "unet.py:make", "--degradation", "blur:radius=2"],
         ("gaussian_noise:sigma=N", "jpeg:quality=N")),
    ],
)  # fmt: skip
def test_bad_module_options_are_one_line(unet_dir, tmp_path, args, needles):
    proc = run_edgegen("export", *args, "--out", str(tmp_path / "out"), cwd=unet_dir)
    assert_one_line_error(proc, *needles)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_weights_that_do_not_match_the_module(unet_dir, tmp_path):
    torch.save({"head.weight": torch.zeros(1)}, tmp_path / "other.pth")
    proc = run_edgegen(
        "export", "--module", "unet.py:make", "--weights", str(tmp_path / "other.pth"),
        "--out", str(tmp_path / "out"), cwd=unet_dir,
    )  # fmt: skip
    assert_one_line_error(proc, "other.pth does not match --module unet.py:make")


def test_a_pth_holding_a_pickled_module_is_refused_not_unpickled(unet_dir, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(unet_dir))
    import unet  # type: ignore[import-not-found]

    torch.save(unet.make(), tmp_path / "whole.pth")  # the whole module, pickled
    proc = run_edgegen("export", str(tmp_path / "whole.pth"), "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, "whole.pth holds pickled Python objects", "state_dict()")


def test_a_state_dict_of_no_known_architecture(tmp_path):
    torch.save({"encoder.w": torch.zeros(3, 3), "decoder.w": torch.zeros(3)}, tmp_path / "x.pth")
    proc = run_edgegen("export", str(tmp_path / "x.pth"), "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, "no known architecture matches its keys", "--module")


def test_a_truncated_plain_safetensors(tmp_path):
    from safetensors.torch import save_file

    save_file({"conv.weight": torch.zeros(8, 3, 3, 3)}, str(tmp_path / "w.safetensors"))
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "w.safetensors").write_bytes(data[: len(data) // 2])
    proc = run_edgegen("export", str(tmp_path / "w.safetensors"), "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, "w.safetensors is not a readable safetensors")


def test_compare_takes_a_users_module_as_the_reference(unet_dir, tmp_path):
    out = tmp_path / "out"
    proc = run_edgegen(
        "export", "--module", "unet.py:make", "--weights", "unet.pth", "--out", str(out),
        cwd=unet_dir,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    compared = run_edgegen(
        "compare", "--reference", "unet.py:make", "--reference-weights", "unet.pth",
        str(out / "model.fp32.onnx"), "--sizes", "37x53", "--max-lsb", "0.05", cwd=unet_dir,
    )  # fmt: skip
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert "PASS" in compared.stdout


class GatedByMean(nn.Module):
    """A channel gate on the image's mean, shut for the receptive-field probes' uniform noise
    (mean 0.5) and open on photos: the gradient sees a local field, tiles differ."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.relu(0.48 - x.mean(dim=(1, 2, 3), keepdim=True))
        return x + gate * self.conv(x)


def test_a_local_field_that_tiles_wrongly_on_the_photos_is_recorded_as_global(tmp_path):
    torch.manual_seed(0)
    result = export_module(GatedByMean(), _spec(), ExportConfig(out=str(tmp_path), **FAST))
    assert result.spec.global_field and result.spec.receptive_field is None
    assert "recorded as global" in result.export_info["field_why"]
    assert (result.spec.tiled_max_lsb or 0) > 0.5
    with pytest.warns(TilingWarning):
        Generator(str(tmp_path / "model.fp32.onnx"), tile=64)(a_photo())
