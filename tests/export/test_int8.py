"""Static int8 quantization: calibration inputs from real photos, QDQ models that run and stay
close to fp32, the spec carried over, atomic writes, and the refusal of dynamic mode.

The model is the `tiny` arch exported here with torch's ONNX exporter, so these tests depend only
on the code under test, not on the fp32 export module.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper
from PIL import Image
from tinymodels import noisy_crop, run_cpu

from edgegen.export import int8 as int8_module
from edgegen.export.calib import CalibrationReader, calibration_inputs
from edgegen.export.int8 import check_int8_mode, quantize_int8
from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.spec import METADATA_KEY, ModelSpec
from edgegen.train import archs
from edgegen.train.config import TrainConfig
from edgegen.train.trainer import make_spec

EXTRA_KEY = "edgegen.test"  # an unrelated metadata key that must survive quantization

# ------------------------------------------------------------------------------- fixtures


def export_tiny(path: Path, cfg: TrainConfig, precision: str = "fp32") -> ModelSpec:
    """Export the `tiny` model for ``cfg`` to ``path`` with its spec in metadata_props."""
    torch.manual_seed(0)
    model = archs.build(
        "tiny",
        scale=cfg.effective_scale,
        in_channels=cfg.channels_io,
        out_channels=cfg.channels_io,
    ).eval()
    spec = make_spec(cfg, model).replace(precision=precision)
    dynamic = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        # The TorchScript exporter (dynamo=False) announces its own deprecation; it is the
        # exporter these tests ask for.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (torch.rand(1, cfg.channels_io, 32, 32),),
            str(path),
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": dynamic, "output": dynamic},
            opset_version=17,
            dynamo=False,
        )
    proto = onnx.load(str(path))
    proto.metadata_props.add(key=METADATA_KEY, value=spec.to_json())
    proto.metadata_props.add(key=EXTRA_KEY, value="kept")
    onnx.save(proto, str(path))
    return spec


@pytest.fixture(scope="module")
def fp32(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModelSpec]:
    path = tmp_path_factory.mktemp("fp32") / "model.onnx"
    return path, export_tiny(path, TrainConfig(arch="tiny"))


@pytest.fixture(scope="module")
def calib(fp32: tuple[Path, ModelSpec]) -> list[np.ndarray]:
    return calibration_inputs(fp32[1], count=8, size=48, seed=0)


@pytest.fixture(scope="module")
def int8(
    fp32: tuple[Path, ModelSpec], calib: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("int8") / "model.int8.onnx"
    settings = quantize_int8(fp32[0], out, calib, progress=False)
    return out, settings


def held_out_crop(size: int = 64) -> np.ndarray:
    """A real photo the calibration never saw (chelsea), noisy as the model expects, NCHW."""
    return noisy_crop(size, size)


def weight_scales(path: Path) -> dict[str, tuple[int, ...]]:
    """Shape of the scale of every DequantizeLinear that dequantizes a conv weight."""
    graph = onnx.load(str(path)).graph
    inits = {t.name: t for t in graph.initializer}
    conv_weights = {n.input[1] for n in graph.node if n.op_type == "Conv"}
    return {
        node.output[0]: tuple(numpy_helper.to_array(inits[node.input[1]]).shape)
        for node in graph.node
        if node.op_type == "DequantizeLinear" and node.output[0] in conv_weights
    }


def write_rgb(path: Path, seed: int, size: tuple[int, int] = (80, 60)) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


# ------------------------------------------------------------------------------- calibration


def test_calibration_inputs_are_degraded_photo_crops(fp32: tuple[Path, ModelSpec]) -> None:
    spec = fp32[1]
    inputs = calibration_inputs(spec, count=5, size=40, seed=3)
    assert len(inputs) == 5
    for x in inputs:
        assert x.shape == (1, 3, 40, 40)
        assert x.dtype == np.float32
        assert x.flags.c_contiguous
        assert x.min() >= 0.0 and x.max() <= 1.0
    assert len({x.tobytes() for x in inputs}) == 5
    # Degraded with the spec's noise (sigma = 25 8-bit steps): with sigma 0 the same seed cuts
    # the same crops clean, and the difference is the noise, less what clipping removed.
    clean = calibration_inputs(
        spec.replace(degradation={"kind": "gaussian_noise", "sigma": 0.0}), count=5, size=40, seed=3
    )
    noise = np.concatenate([(x - c).ravel() for x, c in zip(inputs, clean, strict=True)])
    assert 15 / 255 < noise.std() < 25.5 / 255


def test_calibration_inputs_are_deterministic(fp32: tuple[Path, ModelSpec]) -> None:
    spec = fp32[1]
    a = calibration_inputs(spec, count=4, size=32, seed=1)
    b = calibration_inputs(spec, count=4, size=32, seed=1)
    c = calibration_inputs(spec, count=4, size=32, seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize(
    ("cfg", "shape"),
    [
        (TrainConfig(arch="tiny", task="sr", scale=2), (1, 3, 24, 24)),  # input is size / scale
        (TrainConfig(arch="tiny", color="gray"), (1, 1, 48, 48)),
        (TrainConfig(arch="tiny", task="jpeg", quality=20.0), (1, 3, 48, 48)),
    ],
)
def test_calibration_follows_the_spec(cfg: TrainConfig, shape: tuple[int, ...]) -> None:
    model = archs.build(
        "tiny",
        scale=cfg.effective_scale,
        in_channels=cfg.channels_io,
        out_channels=cfg.channels_io,
    )
    inputs = calibration_inputs(make_spec(cfg, model), count=2, size=48)
    assert [x.shape for x in inputs] == [shape, shape]


def test_calibration_from_a_folder_skips_unreadable_files(
    fp32: tuple[Path, ModelSpec], tmp_path: Path
) -> None:
    (tmp_path / "sub").mkdir()
    write_rgb(tmp_path / "a.png", 0)
    write_rgb(tmp_path / "sub" / "b.jpg", 1, size=(20, 30))  # smaller than the crop: whole photo
    (tmp_path / "broken.png").write_bytes(b"not a png")
    messages: list[str] = []
    inputs = calibration_inputs(fp32[1], str(tmp_path), count=4, size=40, log=messages.append)
    assert sorted(x.shape for x in inputs) == [(1, 3, 30, 20)] * 2 + [(1, 3, 40, 40)] * 2
    assert len(messages) == 1 and "broken.png" in messages[0]


def test_calibration_errors(fp32: tuple[Path, ModelSpec], tmp_path: Path) -> None:
    spec = fp32[1]
    with pytest.raises(EdgegenError, match=r"calibration folder .* contains no images"):
        calibration_inputs(spec, str(tmp_path))
    with pytest.raises(EdgegenError, match=r"calibration folder .*nowhere does not exist"):
        calibration_inputs(spec, str(tmp_path / "nowhere"))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(EdgegenError, match=r"no readable images in calibration folder"):
        calibration_inputs(spec, str(tmp_path), log=lambda _m: None)
    with pytest.raises(EdgegenError, match=r"count must be at least 1, got 0"):
        calibration_inputs(spec, count=0)
    with pytest.raises(EdgegenError, match=r"records no degradation"):
        calibration_inputs(spec.replace(degradation={}))


def test_calibration_reader_feeds_each_input_once() -> None:
    inputs = [np.full((1, 3, 4, 4), i, dtype=np.float32) for i in range(3)]
    reader = CalibrationReader(inputs, progress=False)
    fed = list(iter(reader.get_next, None))
    assert [float(d["input"][0, 0, 0, 0]) for d in fed] == [0.0, 1.0, 2.0]
    assert reader.get_next() is None and len(reader) == 3
    reader.rewind()
    assert reader.get_next() is not None


def test_calibration_reader_shows_progress_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    reader = CalibrationReader([np.zeros((1, 3, 2, 2), np.float32)] * 2)
    while reader.get_next() is not None:
        pass
    captured = capsys.readouterr()
    assert "calibrate" in captured.err and "2/2" in captured.err and captured.out == ""


# ------------------------------------------------------------------------------- quantize


def test_int8_model_is_qdq_and_close_to_fp32(
    fp32: tuple[Path, ModelSpec], int8: tuple[Path, dict]
) -> None:
    path, settings = int8
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    x = held_out_crop()
    expected, got = run_cpu(fp32[0], x), run_cpu(path, x)
    assert got.shape == expected.shape == (1, 3, 64, 64)
    assert np.abs(got - expected).max() < 0.05
    assert settings == {
        "mode": "static",
        "format": "QDQ",
        "method": "minmax",
        "per_channel": True,
        "activation_type": "uint8",
        "weight_type": "int8",
        "calibration_inputs": 8,
        "nodes_to_exclude": [],
        "float_nodes": ["/Add_1"],  # the output Add, y = F(x) + x: the global skip stays float
        "channel_pad": [],  # the tiny model's 4-channel convs stay under the kernel's 16
        "onnxruntime": ort.__version__,
    }


def test_int8_model_carries_the_spec_as_int8(
    fp32: tuple[Path, ModelSpec], int8: tuple[Path, dict]
) -> None:
    props = {p.key: p.value for p in onnx.load(str(int8[0])).metadata_props}
    spec = ModelSpec.from_json(props[METADATA_KEY])
    assert spec.precision == "int8"
    assert spec == fp32[1].replace(precision="int8")
    assert props[EXTRA_KEY] == "kept"


def test_int8_writes_only_the_output_file(int8: tuple[Path, dict]) -> None:
    assert [p.name for p in int8[0].parent.iterdir()] == [int8[0].name]


def test_per_tensor_and_per_channel_weight_scales(
    fp32: tuple[Path, ModelSpec], calib: list[np.ndarray], int8: tuple[Path, dict], tmp_path: Path
) -> None:
    per_channel = weight_scales(int8[0])
    out = tmp_path / "tensor.onnx"
    settings = quantize_int8(fp32[0], out, calib, per_channel=False, progress=False)
    per_tensor = weight_scales(out)
    assert settings["per_channel"] is False
    assert per_channel.keys() == per_tensor.keys() and per_channel
    assert all(shape == () for shape in per_tensor.values())
    # One scale per output channel: 4 for the tiny arch's inner convs, 3 for the RGB output conv.
    assert sorted({shape for shape in per_channel.values()}) == [(3,), (4,)]


def test_s8s8_and_excluded_nodes(
    fp32: tuple[Path, ModelSpec], calib: list[np.ndarray], tmp_path: Path
) -> None:
    out = tmp_path / "s8.onnx"
    graph = onnx.load(str(fp32[0])).graph
    tail = [n.name for n in graph.node if n.op_type == "Conv"][-1]
    settings = quantize_int8(
        fp32[0], out, calib, activation_type="int8", nodes_to_exclude=[tail], progress=False
    )
    assert settings["activation_type"] == "int8" and settings["nodes_to_exclude"] == [tail]
    quantized = onnx.load(str(out)).graph
    inits = {t.name: t for t in quantized.initializer}
    activation_zero_points = [
        inits[n.input[2]] for n in quantized.node if n.op_type == "QuantizeLinear"
    ]
    assert {zp.data_type for zp in activation_zero_points} == {onnx.TensorProto.INT8}
    # The excluded conv keeps its fp32 weight straight from an initializer.
    (kept,) = [n for n in quantized.node if n.name == tail]
    assert inits[kept.input[1]].data_type == onnx.TensorProto.FLOAT
    x = held_out_crop(32)
    assert np.abs(run_cpu(out, x) - run_cpu(fp32[0], x)).max() < 0.05


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_methods_keep_stdout_clean(
    method: str,
    fp32: tuple[Path, ModelSpec],
    calib: list[np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / f"{method}.onnx"
    assert quantize_int8(fp32[0], out, calib, method=method, progress=False)["method"] == method
    assert capsys.readouterr().out == ""  # onnxruntime's calibrators print(); sent to stderr
    x = held_out_crop(32)
    assert np.abs(run_cpu(out, x) - run_cpu(fp32[0], x)).max() < 0.05


def test_corrupt_fp32_model_leaves_no_file(calib: list[np.ndarray], tmp_path: Path) -> None:
    bad = tmp_path / "in" / "model.onnx"
    bad.parent.mkdir()
    bad.write_bytes(b"\x08\x07garbage" * 100)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(EdgegenError, match=r"model.onnx is not a readable ONNX model"):
        quantize_int8(bad, out_dir / "model.int8.onnx", calib, progress=False)
    assert list(out_dir.iterdir()) == []


def test_failure_mid_way_keeps_the_previous_file(
    fp32: tuple[Path, ModelSpec],
    calib: list[np.ndarray],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A crash after calibration, with a half-written model: the file already at out_path is
    untouched, and no temporary file is left beside it or in the temporary folder."""
    real = int8_module.quantize_static

    def crash(model_input: str, model_output: str, *args: object, **kwargs: object) -> None:
        real(model_input, model_output, *args, **kwargs)
        Path(model_output).write_bytes(Path(model_output).read_bytes()[:100])
        raise RuntimeError("killed")

    monkeypatch.setattr(int8_module, "quantize_static", crash)
    system_tmp = tmp_path / "tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "model.int8.onnx"
    out.write_bytes(b"previous")
    # The crash surfaces as one line, as any failure inside onnxruntime's quantizer does.
    with pytest.raises(EdgegenError, match="int8 calibration failed: killed"):
        quantize_int8(fp32[0], out, calib, progress=False)
    assert out.read_bytes() == b"previous"
    assert [p.name for p in out_dir.iterdir()] == [out.name]
    assert list(system_tmp.iterdir()) == []


def test_failure_at_the_final_rename_leaves_no_temporary_file(
    fp32: tuple[Path, ModelSpec], calib: list[np.ndarray], tmp_path: Path
) -> None:
    out = tmp_path / "model.int8.onnx"
    out.mkdir()  # a folder where the file should go: the rename into place fails
    with pytest.raises(OSError):
        quantize_int8(fp32[0], out, calib, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == [out.name] and out.is_dir()


def test_bad_settings_are_one_line_errors(
    fp32: tuple[Path, ModelSpec], calib: list[np.ndarray], tmp_path: Path
) -> None:
    out = tmp_path / "x.onnx"
    cases: list[tuple[dict[str, Any], str]] = [
        (dict(method="kl"), r"unknown int8 calibration method 'kl'"),
        (dict(activation_type="fp8"), r"unknown int8 activation type 'fp8'"),
        (dict(nodes_to_exclude=["no-such-node"]), r"not in the \(pre-processed\) model: no-such"),
    ]
    for kwargs, message in cases:
        with pytest.raises(EdgegenError, match=message):
            quantize_int8(fp32[0], out, calib, progress=False, **kwargs)
    with pytest.raises(EdgegenError, match=r"calibration input 0 is float32 \(1, 5, 16, 16\)"):
        quantize_int8(fp32[0], out, [np.zeros((1, 5, 16, 16), np.float32)], progress=False)
    with pytest.raises(EdgegenError, match=r"calibration input 1 is float64"):
        quantize_int8(fp32[0], out, [calib[0], calib[1].astype(np.float64)], progress=False)
    with pytest.raises(EdgegenError, match=r"at least one calibration input"):
        quantize_int8(fp32[0], out, [], progress=False)
    with pytest.raises(EdgegenError, match=r"fp32 model .*missing.onnx does not exist"):
        quantize_int8(tmp_path / "missing.onnx", out, calib, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_only_an_fp32_model_is_quantized(calib: list[np.ndarray], tmp_path: Path) -> None:
    path = tmp_path / "half.onnx"
    export_tiny(path, TrainConfig(arch="tiny"), precision="fp16")  # the spec says fp16
    with pytest.raises(EdgegenError, match=r"holds a fp16 model; int8 quantization starts from"):
        quantize_int8(path, tmp_path / "out.onnx", calib, progress=False)


def test_dynamic_mode_is_refused_with_the_reason() -> None:
    check_int8_mode("static")
    with pytest.raises(EdgegenError) as info:
        check_int8_mode("dynamic")
    message = str(info.value)
    assert "\n" not in message and info.value.exit_code == 2
    for needle in ("dynamic", "ConvInteger", "no speed-up", "static QDQ", "calibration"):
        assert needle in message
    with pytest.raises(EdgegenError, match=r"unknown int8 mode 'qat'"):
        check_int8_mode("qat")
