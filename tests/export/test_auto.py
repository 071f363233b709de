"""--precision auto: target specs, plain int8 returned unchanged, an impossible target refused
(exit 1, nothing written), mixed precision keeping the harmful node in float, and the CLI's
one-line errors. Tiny models, real photos, real onnxruntime sessions, real files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from clitools import assert_one_line_error, run_edgegen
from tinymodels import tiny_checkpoint

from edgegen.export.target import Measure, parse_target
from edgegen.export.transaction import ExportConfig, export_checkpoint, export_module
from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.spec import METADATA_KEY, ModelSpec
from edgegen.train.archs import GeneratorParams, ResidualGenerator
from edgegen.train.config import TrainConfig
from edgegen.train.trainer import make_spec

FAST = {"calib_count": 4, "progress": False, "qat": 0}

# ------------------------------------------------------------------------------- targets


def test_parse_target_reads_every_metric_and_joins_with_commas() -> None:
    target = parse_target("psnr-drop<=0.1, min-psnr>=45,max-lsb<=2")
    assert [(c.metric, c.op, c.value) for c in target.conditions] == [
        ("psnr-drop", "<=", 0.1),
        ("min-psnr", ">=", 45.0),
        ("max-lsb", "<=", 2.0),
    ]
    assert str(target) == "psnr-drop<=0.1,min-psnr>=45,max-lsb<=2"
    assert parse_target("gt-psnr>=30").conditions[0].metric == "gt-psnr"
    assert parse_target("pct-over-1lsb<=0.5").conditions[0].value == 0.5


def test_target_checks_a_measure() -> None:
    m = Measure(gt_psnr=29.95, fp32_gt_psnr=30.0, psnr_vs_fp32=46.0, max_lsb=3.0, pct_over_1lsb=1)
    assert parse_target("psnr-drop<=0.1").met(m)  # drop 0.05
    assert not parse_target("psnr-drop<=0.01").met(m)
    assert parse_target("min-psnr>=45").met(m)
    failures = parse_target("min-psnr>=45,max-lsb<=2").failures(m)
    assert len(failures) == 1 and "max-lsb 3" in failures[0]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty --target"),
        ("psnr-drop<0.1", "bad --target condition"),
        ("psnr<=3", "unknown --target metric 'psnr'"),
        ("psnr-drop>=0.1", "psnr-drop takes <="),
        ("min-psnr<=40", "min-psnr takes >="),
        ("psnr-drop<=abc", "bad --target condition"),
        ("psnr-drop<=1e999", "finite"),
        ("max-lsb<=-1", "must be >= 0"),
    ],
)
def test_bad_target_is_one_clear_error(text: str, needle: str) -> None:
    with pytest.raises(EdgegenError) as info:
        parse_target(text)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------- search


def test_int8_meeting_a_loose_target_is_returned_unchanged(tmp_path: Path) -> None:
    ckpt = tiny_checkpoint(tmp_path / "run")
    out = tmp_path / "out"
    config = ExportConfig(out=str(out), precision=("int8", "auto"), target="psnr-drop<=3", **FAST)
    result = export_checkpoint(ckpt, config)
    assert {a.precision for a in result.artifacts} == {"int8", "auto"}
    # Same bytes as --precision int8 writes, and verified and golden-sampled like it.
    assert (out / "model.auto.onnx").read_bytes() == (out / "model.int8.onnx").read_bytes()
    manifest = json.loads((out / "model.auto.manifest.json").read_text())
    assert manifest["auto"]["path"] == "int8"
    assert manifest["auto"]["nodes_in_float"] == []
    assert manifest["spec"]["precision"] == "int8"
    assert manifest["verification"]["passed"] is True
    assert (out / "model.auto.golden.npz").is_file()
    assert manifest["auto"]["quality"]["psnr_drop"] <= 3
    assert manifest["auto"]["speed"]["fp32_ms"] > 0 and manifest["auto"]["speed"]["auto_ms"] > 0
    assert [c["path"] for c in manifest["auto"]["candidates"]] == ["int8"]


def test_impossible_target_exits_1_saying_only_fp32_meets_it(tmp_path: Path) -> None:
    ckpt = tiny_checkpoint(tmp_path / "run")
    out = tmp_path / "out"
    proc = run_edgegen(
        "export", str(ckpt), "--out", str(out), "--precision", "auto",
        "--target", "max-lsb<=0", "--qat", "2", "--calib-count", "4", "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("edgegen: error: only fp32 meets --target max-lsb<=0"), last
    # Every step was tried and reported on stderr, and nothing was written.
    for step in ("int8 minmax", "calibration", "node(s) in fp32", "QAT 2 steps"):
        assert step in proc.stderr
    assert not [p.name for p in out.iterdir() if not p.name.startswith(".")]


def _damaged_module() -> tuple[ResidualGenerator, object]:
    """A 1-block generator whose second block conv cannot be int8: one input channel it never
    uses (the first conv's channel 0 is always 0 after the ReLU) carries a weight of 100 in
    every output channel, so per-channel int8 scales round all its real weights to zero."""
    torch.manual_seed(0)
    model = ResidualGenerator(GeneratorParams(channels=6, blocks=1)).eval()
    with torch.no_grad():
        for conv in (model.body[0].body[0], model.body[0].body[2]):
            conv.weight.mul_(10.0)  # undo the 0.1 init: the branch must matter
        first, second = model.body[0].body[0], model.body[0].body[2]
        first.weight[0].zero_()
        first.bias[0] = -1.0
        second.weight[:, 0] = 100.0
    spec = make_spec(TrainConfig(arch="tiny", channels=6, blocks=1), model)
    return model, spec


def test_mixed_precision_keeps_the_harmful_node_in_float(tmp_path: Path) -> None:
    model, spec = _damaged_module()
    out = tmp_path / "out"
    config = ExportConfig(out=str(out), precision=("auto",), target="min-psnr>=40", **FAST)
    export_module(model, spec, config)  # type: ignore[arg-type]
    manifest = json.loads((out / "model.auto.manifest.json").read_text())
    auto = manifest["auto"]
    assert auto["path"] == "mixed", [c["failures"] for c in auto["candidates"]]
    damaged = "/body/body.0/body/body.2/Conv"
    assert auto["sensitivity"][0]["node"] == damaged
    assert auto["nodes_in_float"] == [damaged]
    assert manifest["spec"]["precision"] == "mixed"
    # The graph: that conv takes its float weight directly; every other conv a dequantized one.
    graph = onnx.load(str(out / "model.auto.onnx")).graph
    inits = {i.name for i in graph.initializer}
    dq_outputs = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    convs = {n.name: n for n in graph.node if n.op_type == "Conv"}
    assert convs[damaged].input[1] in inits
    assert all(n.input[1] in dq_outputs for name, n in convs.items() if name != damaged)
    assert auto["quality"]["psnr_vs_fp32"] >= 40
    props = {p.key: p.value for p in onnx.load(str(out / "model.auto.onnx")).metadata_props}
    assert ModelSpec.from_json(props[METADATA_KEY]).precision == "mixed"


# ------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("run")
    tiny_checkpoint(root)
    return root


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("--precision", "int8", "--target", "psnr-drop<=0.1"), ("--target applies to",)),
        (("--precision", "auto"), ("--precision auto needs --target",)),
        (("--precision", "auto", "--target", "psnr<0.1"), ("bad --target condition",)),
        (("--precision", "auto", "--target", "snr>=3"), ("unknown --target metric",)),
        (("--precision", "fp16", "--qat", "10"), ("--qat applies to",)),
        (("--precision", "int8", "--qat", "-1"), ("--qat must be >= 0",)),
    ],
)
def test_cli_target_errors(
    run_dir: Path, tmp_path: Path, args: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    out = tmp_path / "out"
    proc = run_edgegen("export", str(run_dir), "--out", str(out), *args, "--no-progress")
    assert_one_line_error(proc, *needles)
    assert not out.exists() or not list(out.iterdir())


def test_measure_is_computed_on_the_held_out_photos(tmp_path: Path) -> None:
    """The held-out set is the whole held-out photos; the ranking set never includes them."""
    from edgegen.evaluation.photos import BUNDLED_HELD_OUT
    from edgegen.export.evalset import RANKING_PHOTOS, held_out_set, ranking_set
    from edgegen.export.onnx_export import export_fp32

    model, spec = _damaged_module()
    fp32 = tmp_path / "fp32.onnx"
    onnx.save(export_fp32(model, spec)[0], str(fp32))  # type: ignore[arg-type]
    held = held_out_set(spec, fp32)  # type: ignore[arg-type]
    ranking = ranking_set(spec, fp32)  # type: ignore[arg-type]
    assert sorted(held.photos) == sorted(BUNDLED_HELD_OUT)
    assert not set(RANKING_PHOTOS) & set(BUNDLED_HELD_OUT)
    assert sorted(ranking.photos) == sorted(RANKING_PHOTOS)
    assert held.inputs[0].shape[2:] == (300, 451)  # chelsea, whole
    assert np.isfinite(held.fp32_gt_psnr)


# ------------------------------------------------------------------------------- fp16


def test_fp16_block_auto_keeps_the_node_that_breaks_the_tolerance_in_fp32(tmp_path: Path) -> None:
    """The second block conv's weights (5e-8) are below fp16's smallest normal number, and the
    converter clamps them to 1e-7: its output doubles. Kept in fp32 it is exact."""
    torch.manual_seed(0)
    model = ResidualGenerator(GeneratorParams(channels=6, blocks=1)).eval()
    with torch.no_grad():
        first, second = model.body[0].body[0], model.body[0].body[2]
        first.weight.mul_(10000.0)
        first.bias.fill_(1000.0)
        second.weight.copy_(torch.sign(second.weight) * 5e-8)
        second.bias.zero_()
    spec = make_spec(TrainConfig(arch="tiny", channels=6, blocks=1), model)
    strict = {"fp16": {"min_psnr_vs_torch": 84.0}}  # plain fp16 gets about 77 dB here
    base = {"precision": ("fp16",), "progress": False, "tolerances": strict}
    with pytest.raises(EdgegenError, match="PSNR vs torch"):
        export_module(model, spec, ExportConfig(out=str(tmp_path / "plain"), **base))  # type: ignore[arg-type]
    out = tmp_path / "auto"
    export_module(model, spec, ExportConfig(out=str(out), fp16_block="auto", **base))  # type: ignore[arg-type]
    manifest = json.loads((out / "model.fp16.manifest.json").read_text())
    damaged = "/body/body.0/body/body.2/Conv"
    assert manifest["fp16"]["node_block_list"] == [damaged]
    assert manifest["verification"]["passed"] is True
    graph = onnx.load(str(out / "model.fp16.onnx")).graph
    dtypes = {i.name: i.data_type for i in graph.initializer}
    conv = next(n for n in graph.node if n.name == damaged)
    assert dtypes[conv.input[1]] == onnx.TensorProto.FLOAT
    others = [n for n in graph.node if n.op_type == "Conv" and n.name != damaged]
    assert all(dtypes[n.input[1]] == onnx.TensorProto.FLOAT16 for n in others)
