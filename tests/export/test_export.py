"""Export end to end: each precision on tiny models, verification, manifests and failure paths."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from clitools import assert_one_line_error, run_edgegen
from tinymodels import tiny_checkpoint
from torch import nn

from edgegen.export.onnx_export import get_spec
from edgegen.export.transaction import (
    ExportConfig,
    VerificationFailed,
    export_checkpoint,
    export_module,
)
from edgegen.export.verify import tolerance_for, torch_references, verify
from edgegen.runtime.files import sha256_file
from edgegen.runtime.spec import ModelSpec
from edgegen.train.checkpoint import load_checkpoint, save_checkpoint
from edgegen.train.config import TrainConfig
from edgegen.train.trainer import build_model, make_spec

FAST = {"calib_count": 4, "progress": False}


def onnx_out(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_fp32_matches_torch_at_every_size_with_correct_shapes(tmp_path, scale):
    options = {"task": "sr", "scale": scale} if scale > 1 else {}
    ckpt = tiny_checkpoint(tmp_path / "run", **options)
    result = export_checkpoint(ckpt, ExportConfig(out=str(tmp_path / "out"), **FAST))
    (artifact,) = result.artifacts
    assert artifact.report is not None and artifact.report.passed
    sizes = {row.size for row in artifact.report.rows}
    assert {"37x53", "full"} <= sizes and len(sizes) >= 3 and "64x64" not in sizes
    for row in artifact.report.rows:
        assert row.max_lsb / 255 <= 1e-4
    x = np.random.default_rng(1).random((2, 3, 37, 53), dtype=np.float32)
    y = onnx_out(artifact.path, x)
    assert y.shape == (2, 3, 37 * scale, 53 * scale)  # dynamic batch, odd height and width
    model = load_checkpoint(ckpt)
    torch_model = build_model(TrainConfig.from_dict(model.record["config"]))
    torch_model.load_state_dict(model.weights)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x)).numpy()
    assert np.abs(y - expected).max() <= 1e-4

    graph = onnx.load(str(artifact.path))
    assert [i.name for i in graph.graph.input] == ["input"]
    assert [o.name for o in graph.graph.output] == ["output"]
    spec = get_spec(graph)
    assert spec is not None and spec.scale == scale and spec.precision == "fp32"
    assert spec.provenance.checkpoint_sha256 == sha256_file(ckpt)


def test_manifest_and_golden_samples_describe_the_artifact(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "run")
    out = tmp_path / "out"
    export_checkpoint(ckpt, ExportConfig(out=str(out), precision=("fp32", "fp16"), **FAST))
    assert sorted(p.name for p in out.iterdir()) == [
        "model.fp16.golden.npz", "model.fp16.manifest.json", "model.fp16.onnx",
        "model.fp32.golden.npz", "model.fp32.manifest.json", "model.fp32.onnx",
    ]  # fmt: skip
    manifest = json.loads((out / "model.fp16.manifest.json").read_text())
    assert manifest["sha256"] == sha256_file(out / "model.fp16.onnx")
    assert manifest["size_bytes"] == (out / "model.fp16.onnx").stat().st_size
    assert manifest["golden"]["sha256"] == sha256_file(out / "model.fp16.golden.npz")
    assert manifest["source"]["checkpoint_sha256"] == sha256_file(ckpt)
    assert manifest["opset"] == 17 and manifest["precision"] == "fp16"
    assert {"onnx", "onnxruntime", "torch"} <= set(manifest["versions"])
    assert manifest["verification"]["passed"] and manifest["verification"]["rows"]
    assert "InstanceNormalization" in manifest["fp16"]["op_block_list"]

    golden = np.load(out / "model.fp32.golden.npz")
    meta = json.loads(golden["meta"].tobytes())
    sizes = {s["size"] for s in meta["samples"]}
    assert len(sizes) == 2 and "37x53" in sizes
    assert meta["tolerance"]["max_lsb"] == pytest.approx(0.0255)
    # The stored outputs are the torch model's: the fp32 artifact reproduces them.
    for k in range(len(meta["samples"])):
        y = onnx_out(out / "model.fp32.onnx", golden[f"input_{k}"])
        assert np.abs(y - golden[f"output_{k}"]).max() <= 1e-4


def test_fp16_is_accurate_finite_and_half_the_size(tmp_path):
    cfg = TrainConfig(arch="small", out=str(tmp_path / "run"))
    model = build_model(cfg)
    spec = make_spec(cfg, model)
    out = tmp_path / "out"
    result = export_module(
        model, spec, ExportConfig(out=str(out), precision=("fp32", "fp16"), **FAST)
    )
    fp32, fp16 = result.artifacts
    assert fp16.report is not None and fp16.report.passed and not fp16.report.non_finite
    assert min(row.psnr_vs_torch for row in fp16.report.rows) >= 60
    assert 0.4 < fp16.size_bytes / fp32.size_bytes < 0.6
    graph = onnx.load(str(fp16.path))
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # io kept fp32


def test_int8_through_the_cli_is_static_qdq_and_reports_quality(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "run")
    proc = run_edgegen(
        "export", str(ckpt), "--out", str(tmp_path / "out"), "--precision", "int8",
        "--calib-count", "4", "--no-progress", "--tolerance", "int8.max_gt_psnr_drop=10",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "int8: PASS" in proc.stdout and "full" in proc.stdout
    out = tmp_path / "out"
    ops = {n.op_type for n in onnx.load(str(out / "model.int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    manifest = json.loads((out / "model.int8.manifest.json").read_text())
    assert manifest["calibration"]["method"] == "minmax"
    assert manifest["calibration"]["per_channel"] is True
    assert manifest["verification"]["rows"][0]["gt_psnr"] is not None
    assert not (out / "model.fp32.onnx").exists()  # only what was asked for


def test_precision_may_be_given_as_a_comma_string():
    assert ExportConfig(precision="fp32, int8").precision == ("fp32", "int8")


def test_ort_format_is_written_and_runs(tmp_path):
    import onnxruntime as ort

    ckpt = tiny_checkpoint(tmp_path / "run")
    out = tmp_path / "out"
    export_checkpoint(ckpt, ExportConfig(out=str(out), ort_format=True, **FAST))
    session = ort.InferenceSession(str(out / "model.fp32.ort"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, 20, 24), dtype=np.float32)
    np.testing.assert_allclose(
        session.run(None, {"input": x})[0], onnx_out(out / "model.fp32.onnx", x), atol=1e-5
    )


def test_int8_ort_format_has_the_int8_kernels_baked_in(tmp_path):
    """onnxruntime does not optimise an ORT-format model at load: the .ort must already hold the
    fused int8 ops, or it runs its convs in float between Quantize/Dequantize pairs."""
    import onnxruntime as ort
    from onnxruntime.tools.ort_format_model import create_config_from_models

    ckpt = tiny_checkpoint(tmp_path / "run")
    out = tmp_path / "out"
    config = ExportConfig(out=str(out), precision=("int8",), ort_format=True, **FAST)
    export_checkpoint(ckpt, config)
    ort_path = out / "model.int8.ort"
    create_config_from_models([ort_path], tmp_path / "ops.config", enable_type_reduction=False)
    ops = (tmp_path / "ops.config").read_text()
    assert "QLinearConv" in ops and "QLinearAdd" in ops
    assert ";Conv" not in ops and ",Conv" not in ops  # no float conv left
    session = ort.InferenceSession(str(ort_path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, 20, 24), dtype=np.float32)
    ref = onnx_out(out / "model.int8.onnx", x)
    np.testing.assert_allclose(session.run(None, {"input": x})[0], ref, atol=1e-6)


def test_verification_catches_weights_changed_after_export(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "run")
    out = tmp_path / "out"
    export_checkpoint(ckpt, ExportConfig(out=str(out), **FAST))
    graph = onnx.load(str(out / "model.fp32.onnx"))
    weight = max(graph.graph.initializer, key=lambda t: len(t.raw_data) or len(t.float_data))
    array = onnx.numpy_helper.to_array(weight).copy()
    array.flat[0] += 0.05  # one weight, slightly off
    weight.CopyFrom(onnx.numpy_helper.from_array(array, weight.name))
    tampered = tmp_path / "tampered.onnx"
    onnx.save(graph, str(tampered))

    spec = ModelSpec.from_dict(load_checkpoint(ckpt).record["spec"])
    model = build_model(TrainConfig.from_dict(load_checkpoint(ckpt).record["config"]))
    model.load_state_dict(load_checkpoint(ckpt).weights)
    refs = torch_references(model, spec)
    good = verify(out / "model.fp32.onnx", "fp32", refs, tolerance_for("fp32"))
    bad = verify(tampered, "fp32", refs, tolerance_for("fp32"))
    assert good and not bad
    assert any("max error" in f for f in bad.failures)


def test_a_broken_tolerance_exits_1_and_writes_nothing(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "run")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("already here")
    proc = run_edgegen(
        "export", str(ckpt), "--out", str(out), "--precision", "fp32,fp16",
        "--tolerance", "fp16.min_psnr_vs_torch=500",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "fp16: FAIL" in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "PSNR vs torch" in lines[0] and "Traceback" not in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]  # no artifact, no temp file


class UserNet(nn.Module):
    """A generator a user brings: InstanceNorm (affine), reflection padding, nearest upsampling
    followed by a conv, and a residual add: none of it from edgegen."""

    def __init__(self) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv1 = nn.Conv2d(3, 8, 3)
        self.norm = nn.InstanceNorm2d(8, affine=True)
        self.down = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv2 = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.norm(self.conv1(self.pad(x))))
        h = self.conv2(self.up(torch.relu(self.down(h))))
        h = h[..., : x.shape[-2], : x.shape[-1]]
        return x + 0.1 * h


def test_export_module_handles_a_users_network(tmp_path):
    torch.manual_seed(0)
    net = UserNet()
    with torch.no_grad():
        net.norm.weight.uniform_(0.5, 1.5)
        net.norm.bias.uniform_(-0.2, 0.2)
    spec = ModelSpec(
        task="denoise", arch="user_net", degradation={"kind": "gaussian_noise", "sigma": 25.0}
    )
    config = ExportConfig(
        out=str(tmp_path / "out"), precision=("fp32", "fp16", "int8"),
        tolerances={"int8": {"max_gt_psnr_drop": 10.0}}, **FAST,
    )  # fmt: skip
    result = export_module(net, spec, config)
    reports = {a.precision: a.report for a in result.artifacts}
    assert reports["fp32"] and reports["fp16"]
    assert reports["int8"] is not None and reports["int8"].rows[0].gt_psnr is not None
    fp16_ops = {n.op_type for n in onnx.load(str(tmp_path / "out" / "model.fp16.onnx")).graph.node}
    assert "InstanceNormalization" in fp16_ops and "Cast" in fp16_ops  # kept in fp32


# ------------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def good_ckpt(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("good"))


def bad_file(tmp_path: Path, kind: str, good: Path) -> Path:
    path = tmp_path / "ckpt.safetensors"
    if kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "pickle":
        path = tmp_path / "model.pt"
        path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    elif kind == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "bad-spec":
        ckpt = load_checkpoint(good)
        record = dict(ckpt.record)
        record["spec"] = dict(record["spec"], scale="two", colour="RGB")
        path = save_checkpoint(tmp_path, "ckpt", record, ckpt.weights)
    return path


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("random", "not a readable safetensors checkpoint"),
        ("pickle", "holds pickled Python objects"),
        ("truncated", "not a readable safetensors checkpoint"),
        ("bad-spec", "unknown field(s): colour"),
    ],
)
def test_bad_checkpoints(tmp_path, good_ckpt, kind, needle):
    path = bad_file(tmp_path, kind, good_ckpt)
    proc = run_edgegen("export", str(path), "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, needle)
    assert not any((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--precision", "int4"], "unknown precision int4"),
        (["--opset", "99"], "--opset 99"),
        (["--opset", "9"], "--opset 9 is too old"),
        (["--calib-method", "mse"], "'mse' is not one of"),
    ],
)
def test_bad_options(tmp_path, good_ckpt, args, needle):
    proc = run_edgegen("export", str(good_ckpt), "--out", str(tmp_path / "out"), *args)
    assert_one_line_error(proc, needle)
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())


def test_dynamic_int8_is_refused_with_its_reason(tmp_path, good_ckpt):
    proc = run_edgegen(
        "export", str(good_ckpt), "--out", str(tmp_path / "out"), "--precision", "int8",
        "--int8-mode", "dynamic",
    )  # fmt: skip
    assert_one_line_error(proc, "dynamic", "static")
    assert not (tmp_path / "out").exists()


def test_an_opset_onnxruntime_cannot_run(tmp_path, good_ckpt):
    """onnx knows newer opsets than the trace exporter or onnxruntime handle: exit 2 too,
    nothing written."""
    import onnx as onnx_mod

    newest = onnx_mod.defs.onnx_opset_version()
    proc = run_edgegen(
        "export", str(good_ckpt), "--out", str(tmp_path / "out"), "--opset", str(newest),
        "--exporter", "trace",
    )  # fmt: skip
    assert_one_line_error(proc, f"opset {newest}")
    assert not any((tmp_path / "out").iterdir())


def test_empty_calibration_folder(tmp_path, good_ckpt):
    (tmp_path / "calib").mkdir()
    proc = run_edgegen(
        "export", str(good_ckpt), "--out", str(tmp_path / "out"), "--precision", "int8",
        "--calib", str(tmp_path / "calib"),
    )  # fmt: skip
    assert_one_line_error(proc, "calib", "contains no images")
    assert not any((tmp_path / "out").iterdir())


def test_unwritable_output_folder(tmp_path, good_ckpt):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    proc = run_edgegen("export", str(good_ckpt), "--out", str(blocker / "out"))
    assert_one_line_error(proc, "is not writable")
    assert blocker.read_text() == "a file, not a folder"


def test_an_existing_artifact_survives_a_failed_export(tmp_path, good_ckpt):
    out = tmp_path / "out"
    export_checkpoint(good_ckpt, ExportConfig(out=str(out), **FAST))
    before = (out / "model.fp32.onnx").read_bytes()
    with pytest.raises(VerificationFailed):
        export_checkpoint(
            good_ckpt, ExportConfig(out=str(out), tolerances={"fp32": {"max_lsb": -1.0}}, **FAST)
        )
    assert (out / "model.fp32.onnx").read_bytes() == before
    assert not list(out.glob(".*.tmp"))
    shutil.rmtree(out)


class ScalesItsInputInPlace(nn.Module):
    """A network written the way many are (``x *= rgb_range`` first): it changes its input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x *= 255.0
        return x / 255.0 + 0.01 * self.conv(x / 255.0)


def test_a_module_that_changes_its_input_in_place_leaves_the_references_intact(
    tmp_path: Path,
) -> None:
    """The PyTorch reference must not share memory with the samples: the in-place op would
    rewrite them, fp32 would "fail" by thousands of LSB and the golden files would store the
    corrupted inputs."""
    torch.manual_seed(0)
    module = ScalesItsInputInPlace()
    spec = ModelSpec(task="denoise", arch="custom", receptive_field=3)
    refs = torch_references(module, spec, "bundled")
    for x in refs.inputs:
        assert float(x.max()) <= 2.0, float(x.max())  # still [0, 1] + noise, not x 255
    result = export_module(
        module, spec, ExportConfig(out=str(tmp_path / "out"), precision=("fp32",), **FAST)
    )
    assert result.artifacts[0].path.name == "model.fp32.onnx"
    proc = run_edgegen("verify", str(tmp_path / "out" / "model.fp32.onnx"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
