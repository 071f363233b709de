"""edgegen.evaluation.layers: per-tensor comparison of two exports of one model, on real photos and
real onnxruntime sessions (tiny exported models, one of them with a deliberately damaged conv)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from tinymodels import damaged_conv_copy, exported, identity_onnx

from edgegen.evaluation.formats import render
from edgegen.evaluation.layers import (
    SQNR_CAP,
    LayersResult,
    TensorStats,
    compare_layers,
    layer_rows,
    match_activations,
)
from edgegen.runners.activations import GRAPH_INPUT, ActivationRunner, TensorNode
from edgegen.runtime.errors import EdgegenError

SIZES = [(48, 64)]


def _out() -> Path:
    return exported(("fp32", "fp16", "int8"))


def _graph_outputs_in_order(path: Path) -> list[str]:
    model = onnx.load(str(path))
    return [i.name for i in model.graph.input] + [o for n in model.graph.node for o in n.output]


# -- pure numpy ----------------------------------------------------------------------------------


def test_sqnr_and_range_error_by_hand():
    st = TensorStats()
    st.add(np.array([3.0, 4.0]), np.array([3.0, 4.5]))  # signal 25, noise 0.25
    assert st.sqnr_db == pytest.approx(20.0)
    st.add(np.array([[0.0, -1.0]]), np.array([[0.0, -1.0]]))  # signal +1, no noise
    assert st.sqnr_db == pytest.approx(10 * math.log10(26 / 0.25))
    assert st.ref_range == pytest.approx(5.0)  # -1 .. 4 over both batches
    assert st.max_err_range == pytest.approx(0.5 / 5.0)
    assert st.qdq_sqnr_db is None
    same = TensorStats()
    same.add(np.ones(4, np.float16), np.ones(4, np.float32))
    assert same.sqnr_db == SQNR_CAP and same.max_err_range == 0.0


def test_an_overflowed_tensor_is_the_worst_and_json_safe():
    st = TensorStats()
    st.add(np.array([1.0, 2.0, 3.0]), np.array([1.0, np.inf, 3.5], np.float16))
    assert st.nonfinite == 1 and st.sqnr_db == -SQNR_CAP and st.max_err_range == math.inf
    graph = [TensorNode("x", GRAPH_INPUT), TensorNode("y", "Conv", "n", ("x",))]
    exact = TensorStats()
    exact.add(np.ones(3), np.ones(3))
    rows = layer_rows(graph, {"x": exact, "y": st})
    assert rows[1].drop_db == pytest.approx(2 * SQNR_CAP)
    result = LayersResult({"jump_db": 10.0, "photos": [], "sizes": []}, {}, {}, rows=rows)
    data = json.loads(render(result, "json"))
    assert data["tensors"][1]["max_err_range"] is None and data["tensors"][1]["nonfinite"] == 1
    assert data["first_jump"] == "y"


def test_sqnr_agrees_with_onnxruntime():
    from onnxruntime.quantization.qdq_loss_debug import compute_signal_to_quantization_noice_ratio

    rng = np.random.default_rng(3)
    a = [rng.normal(size=500).astype(np.float32) for _ in range(3)]
    b = [x + rng.normal(scale=0.01, size=x.shape).astype(np.float32) for x in a]
    st = TensorStats()
    for x, y in zip(a, b, strict=True):
        st.add(x, y)
    assert st.sqnr_db == pytest.approx(compute_signal_to_quantization_noice_ratio(a, b), abs=1e-3)


def test_drop_looks_through_unmatched_tensors():
    # input -> conv -> relu (unmatched) -> conv2; add(conv, conv2)
    graph = [
        TensorNode("x", GRAPH_INPUT),
        TensorNode("c1", "Conv", "n1", ("x",)),
        TensorNode("r", "Relu", "n2", ("c1",)),
        TensorNode("c2", "Conv", "n3", ("r",)),
        TensorNode("s", "Add", "n4", ("c1", "c2")),
    ]
    stats = {}
    for name, noise in (("x", 0.0), ("c1", 0.1), ("c2", 0.01), ("s", 0.001)):
        st = TensorStats()
        st.add(np.array([1.0]), np.array([1.0 + noise]))
        stats[name] = st
    rows = {r.name: r for r in layer_rows(graph, stats)}
    assert list(rows) == ["x", "c1", "c2", "s"]
    assert rows["x"].drop_db == 0.0 and rows["x"].sqnr_db == SQNR_CAP
    assert rows["c1"].input_sqnr_db == SQNR_CAP
    assert rows["c1"].sqnr_db == pytest.approx(20.0)
    assert rows["c2"].input_sqnr_db == pytest.approx(20.0)  # through the unmatched relu to c1
    assert rows["c2"].drop_db == pytest.approx(20.0 - 40.0)
    assert rows["s"].input_sqnr_db == pytest.approx(20.0)  # the worse of c1 and c2
    result = LayersResult(
        settings={"jump_db": 10.0, "photos": ["p"], "sizes": ["full"]},
        reference={"name": "a"},
        variant={"name": "b", "precision": "fp32"},
        rows=list(rows.values()),
    )
    assert result.first_jump is not None and result.first_jump.name == "c1"
    assert [r.name for r in result.jumps] == ["c1"]
    assert result  # a diagnosis, never a failed check


# -- real models ---------------------------------------------------------------------------------


def test_damaged_conv_is_named_first(tmp_path):
    ref = _out() / "model.fp32.onnx"
    bad = tmp_path / "model.damaged.onnx"
    damaged = damaged_conv_copy(ref, bad, conv_index=2, seed=7)
    result = compare_layers(ref, bad, sizes=SIZES)
    assert result.first_jump is not None
    assert result.first_jump.name == damaged
    order = [r.name for r in result.rows]
    before = order[: order.index(damaged)]
    assert len(before) >= 3  # the input and the convs upstream of the damaged one
    assert all(r.sqnr_db > 100 for r in result.rows if r.name in before)
    assert result.first_jump.sqnr_db < 30
    assert not result.unmatched  # same graph: every tensor matches
    table = render(result, "table")
    line = next(x for x in table.splitlines() if x.split()[1:2] == [damaged])
    assert "<- first jump" in line
    assert f"first jump: {damaged}" in table
    assert '"first_jump": "' + damaged + '"' in render(result, "json")
    assert render(result, "markdown").startswith("| # | tensor |")


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_int8_and_fp16_tensors_match_in_graph_order(precision):
    out = _out()
    ref = out / "model.fp32.onnx"
    result = compare_layers(ref, out / f"model.{precision}.onnx", sizes=SIZES)
    graph_order = _graph_outputs_in_order(ref)
    names = [r.name for r in result.rows]
    assert [graph_order.index(n) for n in names] == sorted(graph_order.index(n) for n in names)
    assert [r.index for r in result.rows] == sorted(r.index for r in result.rows)
    assert names[0] == "input" and names[-1] == "output"
    model = onnx.load(str(ref))
    adds = [n.output[0] for n in model.graph.node if n.op_type == "Add"]
    assert set(adds) <= set(names)
    for row in result.rows:
        assert math.isfinite(row.sqnr_db) and math.isfinite(row.max_err_range)
        if row.op != GRAPH_INPUT:
            assert row.sqnr_db < SQNR_CAP, row  # a lower precision is never exact
            assert 0.0 < row.max_err_range < 1.0
    if precision == "fp16":
        assert not result.unmatched  # the converter keeps every name; its Casts are extra
        assert all(r.qdq_sqnr_db is None for r in result.rows)
        assert all(r.sqnr_db > 45 for r in result.rows)
    else:
        # every tensor has its QDQ pair but the output, whose Add int8 keeps in float
        assert [r.name for r in result.rows if r.qdq_sqnr_db is None] == ["output"]
        assert result.rows[0].sqnr_db < SQNR_CAP  # the input itself is quantized
        # The quantizer folds Conv+Relu: the conv's own output is gone from the int8 graph.
        relu_inputs = {n.input[0] for n in model.graph.node if n.op_type == "Relu"}
        assert set(result.unmatched) == relu_inputs
    assert result.first_jump is not None


def test_matching_agrees_with_onnxruntime_activation_error(tmp_path):
    """The SQNR per tensor (vs the fp32 tensor, and pre vs post QDQ) on one real batch equals
    what onnxruntime's own compute_activation_error reports for it."""
    from onnxruntime.quantization import qdq_loss_debug as q
    from tinymodels import photo

    out = _out()
    ref_run = ActivationRunner(out / "model.fp32.onnx", tmp_path / "a.onnx")
    var_run = ActivationRunner(out / "model.int8.onnx", tmp_path / "b.onnx")
    clean = photo(0)[:40, :56].astype(np.float32) / 255.0
    noisy = clean + np.random.default_rng(1).normal(0, 25 / 255, clean.shape).astype(np.float32)
    x = np.ascontiguousarray(noisy.transpose(2, 0, 1)[None])
    ref_acts, var_acts = ref_run.infer(x), var_run.infer(x)
    matched = match_activations(ref_acts, var_acts, ref_run.ops(), var_run.ops())
    expected = q.compute_activation_error(
        q.create_activation_matching(
            {k: [v] for k, v in var_acts.items()}, {k: [v] for k, v in ref_acts.items()}
        )
    )
    # onnxruntime matches QDQ pairs only; the output (its Add stays float in int8) matches by name
    assert set(matched) == set(expected) | {"output"}
    assert matched["output"][1] is None
    relus = {n for n, op in ref_run.ops().items() if op == "Relu"}
    for name in expected:
        post, pre = matched[name]
        st = TensorStats()
        st.add(ref_acts[name], post, pre)
        # onnxruntime floors the noise at machine epsilon; ours caps at SQNR_CAP.
        want = min(SQNR_CAP, expected[name]["xmodel_err"])
        assert st.sqnr_db == pytest.approx(want, abs=0.01), name
        if name not in relus:  # there ours clips the pre-QDQ tensor as the dropped Relu would
            want = min(SQNR_CAP, expected[name]["qdq_err"])
            assert st.qdq_sqnr_db == pytest.approx(want, abs=0.01), name


def test_input_errors(tmp_path):
    out = _out()
    ref = out / "model.fp32.onnx"
    with pytest.raises(EdgegenError, match="no such file"):
        compare_layers(tmp_path / "nope.onnx", out / "model.int8.onnx")
    with pytest.raises(EdgegenError, match="needs an fp32 ONNX file"):
        compare_layers(out, out / "model.int8.onnx")
    with pytest.raises(EdgegenError, match="reference .* is int8"):
        compare_layers(out / "model.int8.onnx", ref)
    with pytest.raises(EdgegenError, match="one variant"):
        compare_layers(ref, out)
    with pytest.raises(EdgegenError, match="--jump-db"):
        compare_layers(ref, out / "model.int8.onnx", jump_db=0.0)
    from edgegen.runtime.generator import Generator

    other = identity_onnx(tmp_path / "other.onnx", Generator(ref).spec, block=2)
    with pytest.raises(EdgegenError, match="shares no intermediate tensor name"):
        compare_layers(ref, other, sizes=SIZES)
