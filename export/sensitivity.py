"""Which nodes cost the most accuracy when quantized (int8) or converted (fp16).

Sensitivity is measured the direct way: keep one node in float, everything else as it is, and
see how much closer to fp32 the model gets on the ranking photos. For int8 the quantization
parameters of every tensor are taken from an already calibrated QDQ model and handed back to
``quantize_static`` as TensorQuantOverrides, so each of the one-node-in-float models costs a
quantization without a calibration pass (about a second on the `small` generator), and all of
them share the same ranges: the only difference between two of them is the node kept in float.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper
from tqdm import tqdm

from .evalset import EvalSet, measure
from .target import Measure, Target

COMPUTE_OPS = ("Conv", "Add", "Mul", "Sub", "MatMul", "Gemm", "Resize", "DepthToSpace")
_Q_SUFFIX = "_QuantizeLinear_Input"  # the quantizer's name for a graph output it quantizes


@dataclass
class NodeScore:
    node: str
    op: str
    measure: Measure
    gain: float  # how much the target's score improves with this node in float


def qdq_params(qdq_path: Path) -> dict[str, list[dict[str, Any]]]:
    """The activation scale/zero point of every tensor a QDQ model quantizes, as
    TensorQuantOverrides keyed by the tensor's name in the float graph."""
    model = onnx.load(str(qdq_path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    params: dict[str, list[dict[str, Any]]] = {}
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits:
            continue  # weights are quantized from their values, not from ranges
        name = node.input[0]
        if name.endswith(_Q_SUFFIX):
            name = name[: -len(_Q_SUFFIX)]
        scale, zero = inits[node.input[1]], inits[node.input[2]]
        params[name] = [{"scale": np.array(scale), "zero_point": np.array(zero)}]
    return params


def candidate_nodes(fp32_path: Path) -> list[tuple[str, str]]:
    """(name, op) of the nodes that int8 quantization turns into integer kernels."""
    model = onnx.load(str(fp32_path))
    return [(n.name, n.op_type) for n in model.graph.node if n.op_type in COMPUTE_OPS and n.name]


def score(target: Target, m: Measure) -> float:
    """Higher is better: the smallest margin by which the measure meets (>0) or misses (<0)
    one of the target's conditions, in the condition's own unit."""
    from .target import METRICS

    margins = []
    for cond in target.conditions:
        got = float(getattr(m, METRICS[cond.metric][1]))
        margins.append(cond.value - got if cond.op == "<=" else got - cond.value)
    return min(margins)


def rank_int8_nodes(
    fp32_path: Path,
    quantize: Callable[[Path, list[str]], None],
    evalset: EvalSet,
    target: Target,
    progress: bool = True,
) -> list[NodeScore]:
    """Every candidate node, most harmful first: ``quantize(out, nodes_to_exclude)`` builds the
    model with those nodes in float (same ranges for all), measured on ``evalset``."""
    nodes = candidate_nodes(fp32_path)
    with tempfile.TemporaryDirectory(prefix="edgegen-sens-") as tmp:
        base_path = Path(tmp) / "all.onnx"
        quantize(base_path, [])
        base = score(target, measure(base_path, evalset))
        scores = []
        bar = tqdm(
            nodes, desc="sensitivity", unit="node", file=sys.stderr, disable=not progress,
            mininterval=0.5 if sys.stderr.isatty() else 10.0, dynamic_ncols=True,
        )  # fmt: skip
        for name, op in bar:
            path = Path(tmp) / "one.onnx"
            quantize(path, [name])
            m = measure(path, evalset)
            scores.append(NodeScore(name, op, m, score(target, m) - base))
        bar.close()
    scores.sort(key=lambda s: s.gain, reverse=True)
    return scores


def groups(count: int) -> list[int]:
    """Group sizes to try, cheapest first: 1, 2, 4, ... up to every candidate node."""
    sizes, k = [], 1
    while k < count:
        sizes.append(k)
        k *= 2
    sizes.append(count)
    return sizes


def fp16_block_nodes(
    fp32_model: onnx.ModelProto,
    evalset: EvalSet,
    passes: Callable[[Measure], bool],
    progress: bool = True,
) -> tuple[list[str], Measure]:
    """The nodes to keep in float32 (beyond fp16's op block list) for fp16 to pass ``passes``.

    None when the plain conversion passes; otherwise each node is kept in fp32 alone, ranked by
    how much closer to fp32 that brings the output, and groups of the most helpful 1, 2, 4, ...
    nodes are tried until one passes. Returns the nodes and the last measure (which fails when
    no group passes: verification then says so).
    """
    from .fp16 import convert_fp16

    with tempfile.TemporaryDirectory(prefix="edgegen-fp16-") as tmp:
        path = Path(tmp) / "fp16.onnx"

        def build(nodes: list[str]) -> Path:
            onnx.save(convert_fp16(fp32_model, node_block_list=tuple(nodes)), str(path))
            return path

        first = measure(build([]), evalset)
        if passes(first):
            return [], first
        names = [n.name for n in fp32_model.graph.node if n.name]
        gains = []
        bar = tqdm(
            names, desc="fp16 sensitivity", unit="node", file=sys.stderr, disable=not progress,
            mininterval=0.5 if sys.stderr.isatty() else 10.0, dynamic_ncols=True,
        )  # fmt: skip
        for name in bar:
            m = measure(build([name]), evalset)
            gains.append((m.psnr_vs_fp32 - first.psnr_vs_fp32, name))
        bar.close()
        ranked = [name for _, name in sorted(gains, key=lambda g: -g[0])]
        last = first
        for k in groups(len(ranked)):
            last = measure(build(ranked[:k]), evalset)
            if passes(last):
                return ranked[:k], last
    return ranked, last
