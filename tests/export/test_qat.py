"""Quantization-aware fine-tuning: the fake quantization matches onnxruntime's QDQ int8, the
exported model carries the learned ranges and runs on integer kernels, and `edgegen train
--qat-from` writes a run whose int8 export uses them. Tiny models, real photos and sessions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from clitools import assert_one_line_error, run_edgegen
from onnx import numpy_helper
from tinymodels import photo, tiny_checkpoint

from edgegen.export.qat_ranges import tensor_names
from edgegen.export.transaction import ExportConfig, export_checkpoint
from edgegen.runtime.errors import EdgegenError
from edgegen.train.archs import GeneratorParams, ResidualGenerator
from edgegen.train.checkpoint import load_checkpoint, load_model
from edgegen.train.qat import QATGenerator, check_supported, fake_quant_weight

FAST = {"calib_count": 4, "progress": False}


def _q_params(model: onnx.ModelProto) -> dict[str, tuple[float, int]]:
    """Activation tensor name -> (scale, zero point) of its QuantizeLinear."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    params = {}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in inits:
            name = node.input[0].removesuffix("_QuantizeLinear_Input")
            params[name] = (float(inits[node.input[1]]), int(inits[node.input[2]]))
    return params


def _optimized_ops(path: Path, tmp: Path) -> list[str]:
    """The op types onnxruntime's CPU provider actually runs after its graph optimizations."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.optimized_model_filepath = str(tmp / "optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(str(tmp / "optimized.onnx")).graph.node]


@pytest.fixture(scope="module")
def qat_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny run exported twice: plain int8, and int8 after 4 QAT steps."""
    root = tmp_path_factory.mktemp("qat")
    ckpt = tiny_checkpoint(root / "run")
    plain, qat = root / "plain", root / "qat"
    export_checkpoint(ckpt, ExportConfig(out=str(plain), precision=("fp32", "int8"), **FAST))
    export_checkpoint(ckpt, ExportConfig(out=str(qat), precision=("int8",), qat=4, **FAST))
    return plain, qat


def test_qat_export_uses_the_learned_ranges(qat_export: tuple[Path, Path]) -> None:
    plain, qat = qat_export
    manifest = json.loads((qat / "model.int8.manifest.json").read_text())
    record = manifest["calibration"]["qat"]
    assert record["steps"] == 4
    learned = record["qparams"]
    model = onnx.load(str(qat / "model.int8.onnx"))
    got = _q_params(model)
    fp32 = onnx.load(str(plain / "model.fp32.onnx"))  # same graph and names as QAT's fp32
    names = tensor_names(fp32)
    assert set(learned) == set(names)  # every fake-quantized tensor found its ONNX tensor
    for key, (scale, zero_point) in learned.items():
        assert got[names[key]] == (np.float32(scale), zero_point), key
    # ...and they were learned: not what MinMax calibration gives the plain int8 model.
    calibrated = _q_params(onnx.load(str(plain / "model.int8.onnx")))
    assert any(calibrated[t][0] != got[t][0] for t in names.values())


def test_qat_fine_tunes_under_the_runs_own_loss_unless_told(tmp_path: Path) -> None:
    # A run trained under the PSNR loss: export's QAT uses it (its losses are minus a PSNR in
    # dB, below zero; L1's are not); --qat-loss names another.
    ckpt = tiny_checkpoint(tmp_path / "run", loss="psnr")
    export_checkpoint(ckpt, ExportConfig(out=str(tmp_path / "a"), precision=("int8",), qat=2,
                                         verify=False, **FAST))  # fmt: skip
    record = json.loads((tmp_path / "a" / "model.int8.manifest.json").read_text())
    assert record["calibration"]["qat"]["loss"] == "psnr"
    assert record["calibration"]["qat"]["final_loss"] < 0
    proc = run_edgegen("export", str(ckpt), "--out", str(tmp_path / "b"), "--precision", "int8",
                       "--qat", "2", "--qat-loss", "l1", "--calib-count", "4", "--no-verify",
                       "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "b" / "model.int8.manifest.json").read_text())
    assert record["calibration"]["qat"]["loss"] == "l1"
    assert record["calibration"]["qat"]["final_loss"] > 0
    with pytest.raises(EdgegenError, match="unknown QAT loss 'ssim'; choose from l1, mse"):
        ExportConfig(out="c", precision=("int8",), qat=2, qat_loss="ssim").validate()


def test_qat_model_runs_on_integer_kernels(qat_export: tuple[Path, Path], tmp_path: Path) -> None:
    _, qat = qat_export
    ops = _optimized_ops(qat / "model.int8.onnx", tmp_path)
    assert ops.count("QLinearConv") == 5  # head, the block's two convs, body_tail, tail
    assert ops.count("QLinearAdd") == 2  # the block's and the body's
    assert ops.count("Add") == 1  # the global skip's, y = F(x) + x, kept in float
    assert "Conv" not in ops


@pytest.mark.parametrize("scale", [1, 2], ids=["denoise", "sr2"])
def test_fake_quantization_matches_onnxruntime(tmp_path: Path, scale: int) -> None:
    """QATGenerator's output equals the exported QDQ model's on onnxruntime to rounding: the
    denoiser, and the x2 SR generator with its pixel shuffle and bicubic skip."""
    from edgegen.export.int8 import quantize_int8
    from edgegen.export.onnx_export import export_fp32
    from edgegen.export.qat_ranges import overrides
    from edgegen.train.config import TrainConfig
    from edgegen.train.qat import calibrate
    from edgegen.train.trainer import make_spec

    torch.manual_seed(0)
    model = ResidualGenerator(GeneratorParams(channels=8, blocks=2, scale=scale)).eval()
    task = "sr" if scale > 1 else "denoise"
    spec = make_spec(TrainConfig(arch="tiny", channels=8, blocks=2, task=task, scale=scale), model)
    x = photo(0)[100:164, 200:264].astype(np.float32).transpose(2, 0, 1)[None] / 255.0
    noisy = np.clip(x + np.random.default_rng(0).normal(0, 0.1, x.shape), 0, 1).astype(np.float32)
    qat = QATGenerator(model)
    calibrate(qat, [noisy])
    with torch.no_grad():  # move the ranges off MinMax's, as training would
        for quant in qat.quant.values():
            quant.scale.mul_(0.9)
    fp32_model, _ = export_fp32(model, spec)
    # every fake-quantized tensor maps onto one tensor of the graph
    assert set(qat.qparams()) <= set(tensor_names(fp32_model))
    if scale > 1:
        assert {"upsample.0", "upsample.0.shuffle"} <= set(qat.qparams())
    # a QAT record from before the output Add stayed float names its range: it is ignored
    older = {**qat.qparams(), "tail.add": (0.01, 3)}
    assert overrides(fp32_model, older) == overrides(fp32_model, qat.qparams())
    fp32_path, int8_path = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    onnx.save(fp32_model, str(fp32_path))
    quantize_int8(
        fp32_path, int8_path, [noisy], progress=False,
        tensor_overrides=overrides(fp32_model, qat.qparams()),
    )  # fmt: skip
    session = ort.InferenceSession(str(int8_path), providers=["CPUExecutionProvider"])
    onnx_out = session.run(["output"], {"input": noisy})[0]
    with torch.no_grad():
        torch_out = qat(torch.from_numpy(noisy)).numpy()
        float_out = model(torch.from_numpy(noisy)).numpy()
    out_scale = qat.qparams()["tail"][0]  # the last quantized tensor; the output Add is float
    # Integer kernels round intermediate sums differently: a step or two of the output grid,
    # far below what quantization itself changes.
    assert np.abs(onnx_out - torch_out).max() <= 2.5 * out_scale
    assert np.abs(onnx_out - torch_out).mean() < 0.2 * np.abs(float_out - torch_out).mean()


def test_weight_fake_quant_is_per_channel_symmetric_int8() -> None:
    w = torch.tensor([[1.0, -0.5, 0.001], [10.0, 2.0, -10.0]]).view(2, 3, 1, 1)
    q, scale = fake_quant_weight(w)
    assert scale.tolist() == pytest.approx([1 / 127, 10 / 127])
    steps = (q / scale.view(-1, 1, 1, 1)).flatten().tolist()
    assert steps == pytest.approx([127, -64, 0, 127, 25, -127])  # -63.5 rounds to even


def test_qat_refuses_architectures_it_does_not_mirror() -> None:
    with pytest.raises(EdgegenError, match="activation prelu, batch norm"):
        params = GeneratorParams(channels=4, blocks=1, scale=2, act="prelu", batch_norm=True)
        check_supported(ResidualGenerator(params))


def test_train_qat_from_writes_a_run_that_int8_export_honours(tmp_path: Path) -> None:
    source = tiny_checkpoint(tmp_path / "run").parent
    out = tmp_path / "qat-run"
    proc = run_edgegen(
        "train", "--qat-from", str(source), "--steps", "3", "--out", str(out), "--no-progress"
    )
    assert proc.returncode == 0, proc.stderr
    ckpt = load_checkpoint(out)
    assert ckpt.record["qat"]["steps"] == 3
    assert ckpt.record["qat_from"]["checkpoint"].endswith("best.safetensors")
    load_model(out)  # the weights fit the architecture
    export = tmp_path / "export"
    proc = run_edgegen(
        "export", str(out), "--out", str(export), "--precision", "fp32,int8",
        "--calib-count", "4", "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((export / "model.int8.manifest.json").read_text())
    assert manifest["calibration"]["qat"]["ranges_from"] == "checkpoint"
    got = _q_params(onnx.load(str(export / "model.int8.onnx")))
    names = tensor_names(onnx.load(str(export / "model.fp32.onnx")))
    for key, (scale, zero_point) in ckpt.record["qat"]["qparams"].items():
        assert got[names[key]] == (np.float32(scale), zero_point), key
    # A second run into the same folder would overwrite it: refused.
    again = run_edgegen("train", "--qat-from", str(source), "--steps", "1", "--out", str(out))
    assert_one_line_error(again, "already holds a run")


def test_sr_export_with_qat_uses_the_learned_ranges(tmp_path: Path) -> None:
    # x2 SR through the CLI: QAT fine-tunes on SR patches (low-resolution inputs, clean targets),
    # and the int8 graph carries every learned range, the shuffle's included.
    # The tiny network is untrained, so int8 is far from its float output whether or not QAT
    # runs (33 dB vs torch): the tolerances are relaxed, the verification still runs.
    ckpt = tiny_checkpoint(tmp_path / "run", task="sr", scale=2)
    export = tmp_path / "export"
    proc = run_edgegen(
        "export", str(ckpt.parent), "--out", str(export), "--precision", "fp32,int8",
        "--qat", "3", "--calib-count", "4", "--no-progress",
        "--tolerance", "int8.min_psnr_vs_torch=25", "--tolerance", "int8.max_gt_psnr_drop=3",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    learned = json.loads((export / "model.int8.manifest.json").read_text())["calibration"]["qat"]
    assert learned["steps"] == 3
    names = tensor_names(onnx.load(str(export / "model.fp32.onnx")))
    assert {"upsample.0", "upsample.0.shuffle", "tail"} <= set(learned["qparams"])
    assert set(learned["qparams"]) == set(names)
    got = _q_params(onnx.load(str(export / "model.int8.onnx")))
    for key, (scale, zero_point) in learned["qparams"].items():
        assert got[names[key]] == (np.float32(scale), zero_point), key


def test_train_qat_from_refuses_training_options(tmp_path: Path) -> None:
    source = tiny_checkpoint(tmp_path / "run").parent
    proc = run_edgegen("train", "--qat-from", str(source), "--lr", "0.1", "--out", "x")
    assert_one_line_error(proc, "--qat-from", "--lr")
