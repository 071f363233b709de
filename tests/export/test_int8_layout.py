"""Channel padding of int8 models (edgegen.export.int8_layout): the padded graph computes the same
function, every conv still fuses into QLinearConv, and graphs the kernel could not use anyway
(too few channels, asymmetric weights) are left byte for byte as quantized.

The models are small-channel generators (16 features, one block): the narrowest for which the
head and tail convs are worth padding, since the symmetric kernel wants 16 output channels.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from clitools import run_edgegen
from onnx import numpy_helper
from tinymodels import noisy_crop, run_cpu, tiny_checkpoint

from edgegen.evaluation.layers import compare_layers
from edgegen.export.calib import calibration_inputs
from edgegen.export.int8 import quantize_int8
from edgegen.export.int8_layout import pad_conv_channels
from edgegen.export.onnx_export import export_fp32
from edgegen.runtime.spec import ModelSpec
from edgegen.train import archs
from edgegen.train.config import TrainConfig
from edgegen.train.trainer import make_spec


def export(path: Path, channels: int, scale: int = 1, color: str = "rgb") -> ModelSpec:
    cfg = TrainConfig(arch="tiny", task="sr" if scale > 1 else "denoise", scale=scale, color=color)
    torch.manual_seed(0)
    io = cfg.channels_io
    model = archs.build(
        "tiny", channels=channels, blocks=1, scale=scale, in_channels=io, out_channels=io
    ).eval()
    spec = make_spec(cfg, model)
    proto, _ = export_fp32(model, spec)
    onnx.save(proto, str(path))
    return spec


def quantized(
    tmp: Path, channels: int, scale: int = 1, color: str = "rgb", **kwargs: object
) -> tuple[Path, Path]:
    """(padded, unpadded) int8 models of one fp32 export, calibrated alike."""
    fp32 = tmp / "fp32.onnx"
    spec = export(fp32, channels, scale, color)
    calib = calibration_inputs(spec, count=4, size=48, seed=0)
    padded, plain = tmp / "padded.onnx", tmp / "plain.onnx"
    quantize_int8(fp32, padded, calib, progress=False, **kwargs)  # type: ignore[arg-type]
    quantize_int8(fp32, plain, calib, progress=False, channel_pad=False, **kwargs)  # type: ignore[arg-type]
    return padded, plain


def optimized_ops(path: Path, tmp: Path) -> collections.Counter[str]:
    """The op types onnxruntime's CPU provider runs after its own fusions."""
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp / f"opt-{path.name}")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    graph = onnx.load(options.optimized_model_filepath).graph
    return collections.Counter(n.op_type for n in graph.node)


def output_step(path: Path) -> float:
    """The quantization step of the model's output (its last QuantizeLinear's scale)."""
    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    last_q = [n for n in model.graph.node if n.op_type == "QuantizeLinear"][-1]
    return float(numpy_helper.to_array(inits[last_q.input[1]]))


@pytest.mark.parametrize("scale", [1, 2])
def test_padding_keeps_the_function_and_the_fusion(tmp_path: Path, scale: int) -> None:
    padded, plain = quantized(tmp_path, channels=16, scale=scale)
    model = onnx.load(str(padded))
    names = collections.Counter(n.name for n in model.graph.node)
    assert names["/head/Conv_chpad_Pad"] == 1 and names["/tail/Conv_chpad_Slice"] == 1
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    convs = {n.name: n for n in model.graph.node if n.op_type == "Conv"}
    head, tail = (
        inits[convs[name].input[1].removesuffix("_DequantizeLinear_Output") + "_quantized"]
        for name in ("/head/Conv", "/tail/Conv")
    )
    assert head.shape[1] == 4  # head: 3 input channels -> 4
    assert tail.shape[0] == 16  # tail: 3 output channels -> 16
    assert not tail[3:].any()  # ... all zero filters

    for h, w in ((37, 53), (64, 64)):
        x = noisy_crop(h, w)
        a, b = run_cpu(padded, x), run_cpu(plain, x)
        assert a.shape == b.shape == (1, 3, h * scale, w * scale)
        # Zero channels add exact zeros; allow one output step for a kernel that rounds its
        # requantization differently (none did on onnxruntime 1.32 / x86: the difference was 0).
        assert np.abs(a - b).max() <= output_step(padded) + 1e-7

    # onnxruntime still fuses every quantized conv into QLinearConv. SR's skip, a fixed bicubic
    # filter on the image itself, is kept in float on purpose (export/int8.py).
    in_float = 1 if scale > 1 else 0
    assert ("/skip_upsample/Conv" in convs) == (scale > 1)
    opt = optimized_ops(padded, tmp_path)
    assert opt["QLinearConv"] == len(convs) - in_float and opt["Conv"] == in_float
    assert optimized_ops(plain, tmp_path)["QLinearConv"] == len(convs) - in_float


def test_gray_models_pad_one_channel_to_four_and_sixteen(tmp_path: Path) -> None:
    padded, plain = quantized(tmp_path, channels=16, color="gray")
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(padded)).graph.initializer}
    assert inits["head.weight_quantized"].shape[1] == 4  # 1 input channel -> 4
    assert inits["tail.weight_quantized"].shape[0] == 16  # 1 output channel -> 16
    x = np.ascontiguousarray(noisy_crop(37, 53).mean(axis=1, keepdims=True))
    a, b = run_cpu(padded, x), run_cpu(plain, x)
    assert a.shape == (1, 1, 37, 53)
    assert np.abs(a - b).max() <= output_step(padded) + 1e-7


def test_the_settings_name_the_padded_convs(tmp_path: Path) -> None:
    fp32 = tmp_path / "fp32.onnx"
    spec = export(fp32, channels=16)
    calib = calibration_inputs(spec, count=2, size=32, seed=0)
    settings = quantize_int8(fp32, tmp_path / "q.onnx", calib, progress=False)
    convs = [n.name for n in onnx.load(str(tmp_path / "q.onnx")).graph.node if n.op_type == "Conv"]
    assert settings["channel_pad"] == [convs[0], convs[-1]]
    off = quantize_int8(fp32, tmp_path / "off.onnx", calib, progress=False, channel_pad=False)
    assert off["channel_pad"] == []


def test_narrow_models_are_left_as_quantized(tmp_path: Path) -> None:
    # 4 features: padding the tail to 16 outputs would multiply its work for a 4-channel input,
    # and the head's 4 outputs stay under the kernel's 16 even with its input padded.
    padded, plain = quantized(tmp_path, channels=4)
    assert padded.read_bytes() == plain.read_bytes()


def test_asymmetric_weights_are_not_padded(tmp_path: Path) -> None:
    # onnxruntime keeps per-channel int8 weights symmetric; per-tensor ones may be asymmetric.
    padded, plain = quantized(
        tmp_path, channels=16, per_channel=False, extra_options={"WeightSymmetric": False}
    )
    model = onnx.load(str(plain))
    zero_points = [numpy_helper.to_array(i) for i in model.graph.initializer
                   if i.name.endswith("weight_zero_point")]  # fmt: skip
    assert any(np.any(z != 0) for z in zero_points)  # the premise: weights are asymmetric
    assert pad_conv_channels(model) == []  # the symmetric kernel never takes such weights
    assert padded.read_bytes() == plain.read_bytes()


def test_per_layer_compare_reads_a_padded_model(tmp_path: Path) -> None:
    padded, _ = quantized(tmp_path, channels=16)
    result = compare_layers(tmp_path / "fp32.onnx", padded, sizes=[(32, 32)])
    rows = {row.name: row for row in result.rows}
    tail_out = next(n.output[0] for n in onnx.load(str(padded)).graph.node
                    if n.op_type == "Conv" and n.name.startswith("/tail"))  # fmt: skip
    # The tail's padded output is compared on its 3 real channels, with its own QDQ's SQNR.
    assert rows[tail_out].qdq_sqnr_db is not None and rows[tail_out].qdq_sqnr_db > 20


def test_export_records_the_padding_and_no_channel_pad_turns_it_off(tmp_path: Path) -> None:
    """Through the real CLI: the manifest names the padded convs; --no-channel-pad writes the
    graph as quantized, computing the same output."""
    ckpt = tiny_checkpoint(tmp_path / "run", channels=16)
    models = {}
    for flag in ("--channel-pad", "--no-channel-pad"):
        out = tmp_path / flag.strip("-")
        proc = run_edgegen(
            "export", str(ckpt), "--out", str(out), "--precision", "int8", "--calib-count", "4",
            "--no-progress", "--no-verify", flag,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        manifest = json.loads((out / "model.int8.manifest.json").read_text())
        models[flag] = (out / "model.int8.onnx", manifest["calibration"]["channel_pad"])
    assert models["--channel-pad"][1] == ["/head/Conv", "/tail/Conv"]
    assert models["--no-channel-pad"][1] == []
    x = noisy_crop(41, 29)
    (padded_path, _), (plain_path, _) = models["--channel-pad"], models["--no-channel-pad"]
    padded, plain = run_cpu(padded_path, x), run_cpu(plain_path, x)
    assert np.abs(padded - plain).max() <= output_step(padded_path) + 1e-7
