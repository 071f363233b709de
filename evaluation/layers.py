"""Where a variant diverges from its fp32 reference: every intermediate tensor, compared by name.

``edgegen compare --per-layer REF VARIANT`` runs both ONNX models with every float tensor exposed
as an output (:class:`edgegen.runners.activations.ActivationRunner`), on the same degraded
photos as :func:`edgegen.evaluation.compare.compare`, and lists, in the reference's graph order,
per tensor matched by name:

- SQNR (dB): ``10 log10(sum(ref^2) / sum((ref - variant)^2))``, pooled over every photo, as
  onnxruntime's ``compute_signal_to_quantization_noice_ratio``; capped at :data:`SQNR_CAP`
  (identical tensors);
- ``max_err_range``: the largest absolute difference in units of the tensor's range in the
  reference (``max - min`` over every photo): 1/255 is one uint8 step of a full-range quantizer;
- ``drop_db``: how many dB of SQNR this tensor lost against the tensors its node reads (the
  nearest matched ones upstream; the graph's inputs count as exact): error that *grows here*;
- ``nonfinite``: the variant's inf/NaN values (SQNR -SQNR_CAP, max error inf, null in JSON);
- ``qdq_sqnr_db`` (int8 QDQ variants): the variant's tensor before vs after its own
  Quantize/DequantizeLinear pair, i.e. what quantizing this tensor alone costs.

Every tensor whose drop reaches ``jump_db`` is a *jump*; the first of them in graph order is
where the variant first diverges (for int8 that is usually its quantized input, and the jumps
after it show where the error grows again).

Matching: a QDQ variant's ``X_DequantizeLinear_Output`` (what its consumers read) stands for the
reference's ``X`` (onnxruntime's ``create_activation_matching``); otherwise the same name,
whatever its dtype (fp16 tensors are compared in float32; the converter's Cast outputs match
nothing). Errors are pooled in float64 photo by photo, so a full photo's activations are held
for one photo at a time (``compute_activation_error`` would need them all at once).

Runners and comparison are apart (as in :mod:`edgegen.evaluation.compare`): the activation runner
(onnxruntime, and ``onnx`` imported only when it is built) returns the named tensors of one batch;
:class:`TensorStats` and :func:`layer_rows` are pure numpy and Python.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgegen.runners import onnx_runner
from edgegen.runners.activations import GRAPH_INPUT, ActivationRunner, TensorNode, qdq_debug
from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.metrics import Verdict
from edgegen.runtime.model_io import padded_input
from edgegen.runtime.spec import ModelSpec

from .compare import expand_variants, onnx_reference, same_io
from .formats import Column
from .samples import Sample, make_samples, size_label

SQNR_CAP = 150.0  # dB for identical tensors; JSON cannot hold inf (as metrics.PSNR_CAP)
JUMP_DB = 10.0  # a tensor that loses this much SQNR against its inputs is a jump
# Every tensor of a photo is held at once (both models, and an int8 model's before and after
# its QDQ): the small 32-channel model peaks at ~5.7 GB on the whole held-out photos and ~1.5 GB
# on 256 x 256 center crops, so crops are the default.
DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((256, 256),)

# Keys of one tensor object in the JSON (stable, documented).
TENSOR_KEYS = (
    "index",
    "name",
    "op",
    "node",
    "sqnr_db",
    "input_sqnr_db",
    "drop_db",
    "max_err_range",
    "max_abs_err",
    "ref_range",
    "qdq_sqnr_db",
    "nonfinite",
)


# -- comparison (pure numpy) -------------------------------------------------------------------


def sqnr_db(signal_sq: float, noise_sq: float) -> float:
    """``10 log10(signal / noise)`` of two sums of squares, capped at :data:`SQNR_CAP`."""
    if noise_sq <= 0.0:
        return SQNR_CAP
    if signal_sq <= 0.0 or not math.isfinite(noise_sq):
        return -SQNR_CAP
    return float(
        min(SQNR_CAP, max(-SQNR_CAP, 10.0 * (math.log10(signal_sq) - math.log10(noise_sq))))
    )


@dataclass
class TensorStats:
    """One tensor's error, accumulated photo by photo (float64 sums, so nothing is kept)."""

    count: int = 0
    signal_sq: float = 0.0
    noise_sq: float = 0.0
    max_abs: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf
    qdq_signal_sq: float = 0.0
    qdq_noise_sq: float = 0.0
    qdq: bool = False
    nonfinite: int = 0  # the variant's inf/NaN values (an fp16 overflow, say)

    def add(self, ref: np.ndarray, var: np.ndarray, pre_qdq: np.ndarray | None = None) -> None:
        """``ref`` and ``var`` of one batch (any shape, same size); ``pre_qdq``: the variant's
        tensor before its own QuantizeLinear, when it has one."""
        r = np.asarray(ref, dtype=np.float64).ravel()
        v = np.asarray(var, dtype=np.float64).ravel()
        if r.size != v.size:
            raise ValueError(f"sizes differ: {r.size} vs {v.size}")
        if r.size == 0:
            return
        bad = ~np.isfinite(v)
        if bad.any():
            # Counted, and left out of the sums so that the finite part still has a max error.
            self.nonfinite += int(bad.sum())
            v = np.where(bad, r, v)
        d = r - v
        self.count += r.size
        self.signal_sq += float(np.dot(r, r))
        self.noise_sq += float(np.dot(d, d))
        self.max_abs = max(self.max_abs, float(np.abs(d).max()))
        self.lo = min(self.lo, float(r.min()))
        self.hi = max(self.hi, float(r.max()))
        if pre_qdq is not None:
            p = np.asarray(pre_qdq, dtype=np.float64).ravel()
            q = p - v
            self.qdq = True
            self.qdq_signal_sq += float(np.dot(p, p))
            self.qdq_noise_sq += float(np.dot(q, q))

    @property
    def sqnr_db(self) -> float:
        return -SQNR_CAP if self.nonfinite else sqnr_db(self.signal_sq, self.noise_sq)

    @property
    def ref_range(self) -> float:
        return self.hi - self.lo if self.count else 0.0

    @property
    def max_err_range(self) -> float:
        """The largest error over the reference's range; a constant tensor uses 1 as its range."""
        if self.nonfinite:
            return math.inf
        span = self.ref_range
        return self.max_abs / span if span > 0.0 else self.max_abs

    @property
    def qdq_sqnr_db(self) -> float | None:
        if not self.qdq:
            return None
        return -SQNR_CAP if self.nonfinite else sqnr_db(self.qdq_signal_sq, self.qdq_noise_sq)


@dataclass
class LayerRow:
    index: int  # position among the reference's tensors (graph inputs first, then node order)
    name: str
    op: str
    node: str
    sqnr_db: float
    input_sqnr_db: float  # the worst matched tensor upstream; SQNR_CAP when there is none
    drop_db: float  # input_sqnr_db - sqnr_db: positive when the error grows here
    max_err_range: float
    max_abs_err: float
    ref_range: float
    qdq_sqnr_db: float | None = None
    nonfinite: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: _finite(getattr(self, k)) for k in TENSOR_KEYS}


def _finite(value: Any) -> Any:
    """JSON has no inf: a non-finite float becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def layer_rows(graph: Sequence[TensorNode], stats: Mapping[str, TensorStats]) -> list[LayerRow]:
    """One row per tensor of ``graph`` (in its order) that has ``stats``; a tensor's input SQNR
    is the lowest among the nearest tensors upstream that have stats (unmatched ones are looked
    through, to their own inputs)."""
    by_name = {t.name: t for t in graph}
    upstream: dict[str, float] = {}

    def reaching(name: str) -> float:
        # The SQNR of what reaches ``name``: its own when matched, else its producer's inputs'.
        if name in stats:
            return stats[name].sqnr_db
        return feeding(name)

    def feeding(name: str) -> float:
        if name not in upstream:
            upstream[name] = SQNR_CAP  # guards against a cycle; graphs are acyclic
            node = by_name.get(name)
            inputs = node.inputs if node is not None else ()
            upstream[name] = min((reaching(i) for i in inputs), default=SQNR_CAP)
        return upstream[name]

    rows = []
    for index, tensor in enumerate(graph):
        st = stats.get(tensor.name)
        if st is None or st.count == 0:
            continue
        before = feeding(tensor.name)
        rows.append(
            LayerRow(
                index=index,
                name=tensor.name,
                op=tensor.op,
                node=tensor.node,
                sqnr_db=st.sqnr_db,
                input_sqnr_db=before,
                drop_db=before - st.sqnr_db,
                max_err_range=st.max_err_range,
                max_abs_err=st.max_abs,
                ref_range=st.ref_range,
                qdq_sqnr_db=st.qdq_sqnr_db,
                nonfinite=st.nonfinite,
            )
        )
    return rows


def first_jump(rows: Sequence[LayerRow], jump_db: float = JUMP_DB) -> LayerRow | None:
    """The first row (graph order) that loses at least ``jump_db`` against its inputs."""
    return next((r for r in rows if r.drop_db >= jump_db), None)


def jumps(rows: Sequence[LayerRow], jump_db: float = JUMP_DB) -> list[LayerRow]:
    """Every row that loses at least ``jump_db`` against its inputs, in graph order."""
    return [r for r in rows if r.drop_db >= jump_db]


@dataclass
class LayersResult(Verdict):
    """A per-layer report. Truthy: it is a diagnosis, not a check (``failures`` stays empty)."""

    settings: dict[str, Any]
    reference: dict[str, Any]
    variant: dict[str, Any]
    rows: list[LayerRow] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # reference tensors the variant lacks
    failures: list[str] = field(default_factory=list)

    @property
    def jump_db(self) -> float:
        return float(self.settings["jump_db"])

    @property
    def first_jump(self) -> LayerRow | None:
        return first_jump(self.rows, self.jump_db)

    @property
    def jumps(self) -> list[LayerRow]:
        return jumps(self.rows, self.jump_db)

    def to_dict(self) -> dict[str, Any]:
        jump = self.first_jump
        return {
            "settings": self.settings,
            "reference": self.reference,
            "variant": self.variant,
            "tensors": [r.to_dict() for r in self.rows],
            "unmatched": self.unmatched,
            "first_jump": jump.name if jump else None,
            "jumps": [r.name for r in self.jumps],
        }

    COLUMNS: ClassVar[tuple[Column, ...]] = (
        ("#", "index", "d"),
        ("tensor", "name", "s"),
        ("op", "op", "s"),
        ("SQNR dB", "sqnr_db", ".2f"),
        ("drop dB", "drop_db", ".2f"),
        ("max err/range", "max_err_range", ".2e"),
        ("QDQ SQNR dB", "qdq_sqnr_db", ".2f"),
        ("", "mark", "s"),
    )
    LEFT: ClassVar[frozenset[int]] = frozenset({1, 2, 7})

    def records(self) -> list[Mapping[str, Any]]:
        """One record per matched tensor; ``mark`` names the jumps."""
        first = self.first_jump
        marked = {r.name for r in self.jumps}
        out: list[Mapping[str, Any]] = []
        for r in self.rows:
            mark = ""
            if first is not None and r.name == first.name:
                mark = "<- first jump"
            elif r.name in marked:
                mark = "<- jump"
            out.append({**vars(r), "mark": mark})
        return out

    def summary(self) -> list[str]:
        ref, var, s = self.reference, self.variant, self.settings
        lines = [
            f"reference {ref['name']} vs {var['name']} ({var['precision']}) on "
            f"{len(s['photos'])} photo(s) x {len(s['sizes'])} size(s): {len(self.rows)} tensors "
            f"matched, {len(self.unmatched)} of the reference's unmatched"
        ]
        jump = self.first_jump
        if jump is None:
            lines.append(f"no jump: no tensor loses {self.jump_db:g} dB or more against its inputs")
        else:
            lines.append(
                f"first jump: {jump.name} ({_made_by(jump)}): SQNR {jump.sqnr_db:.2f} dB, "
                f"{jump.drop_db:.2f} dB below its inputs (jump: >= {self.jump_db:g} dB)"
            )
            later = [f"{r.name} ({r.drop_db:.2f} dB)" for r in self.jumps if r is not jump]
            if later:
                lines.append(f"later jumps: {', '.join(later)}")
        quantized = [r for r in self.rows if r.qdq_sqnr_db is not None]
        if quantized:
            worst = min(
                quantized, key=lambda r: math.inf if r.qdq_sqnr_db is None else r.qdq_sqnr_db
            )
            lines.append(
                f"lowest QDQ SQNR: {worst.name}: {worst.qdq_sqnr_db:.2f} dB (quantizing this "
                "tensor alone costs the most)"
            )
        overflow = [f"{r.name} ({r.nonfinite})" for r in self.rows if r.nonfinite]
        if overflow:
            lines.append(f"inf/NaN values in the variant: {', '.join(overflow)}")
        out = next((r for r in reversed(self.rows) if r.op != GRAPH_INPUT), None)
        if out is not None:
            lines.append(f"last matched tensor {out.name}: SQNR {out.sqnr_db:.2f} dB")
        return lines


def _made_by(row: LayerRow) -> str:
    return "the graph's input" if row.op == GRAPH_INPUT else f"{row.op} node {row.node}"


def _qdq_base(name: str, suffixes: Sequence[str]) -> str:
    for suffix in suffixes:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def shared_intermediates(
    ref: Sequence[TensorNode], ref_outputs: Iterable[str], variant: Iterable[str]
) -> list[str]:
    """The reference's node outputs (not its graph outputs) that the variant has, by name or as
    ``NAME_DequantizeLinear_Output`` / ``NAME_QuantizeLinear_Input``: what a per-layer report
    can show before it runs anything."""
    from onnxruntime.quantization.quant_utils import DEQUANT_OUTPUT_SUFFIX, QUANT_INPUT_SUFFIX

    names = {_qdq_base(n, (DEQUANT_OUTPUT_SUFFIX, QUANT_INPUT_SUFFIX)) for n in variant}
    names -= set(ref_outputs)  # "input" and "output" are everyone's names
    return [t.name for t in ref if t.op != GRAPH_INPUT and t.name in names]


def _real_channels(pre: np.ndarray, post: np.ndarray) -> np.ndarray | None:
    """A channel-padded conv's output (edgegen.export.int8_layout) before its QDQ, cut to the
    channels its Slice keeps: the leading ones, so for one NCHW image (compare_layers runs one
    photo at a time, and collect_activations flattens) the first ``post.size`` values. None
    when the shapes differ in any other way."""
    if pre.ndim == post.ndim == 1 and pre.size > post.size:
        return pre[: post.size]
    wider = pre.ndim == post.ndim == 4 and pre.shape[1] > post.shape[1]
    if wider and (pre.shape[0], *pre.shape[2:]) == (post.shape[0], *post.shape[2:]):
        return pre[:, : post.shape[1]]
    return None


def match_activations(
    ref: Mapping[str, np.ndarray],
    variant: Mapping[str, np.ndarray],
    ref_ops: Mapping[str, str],
    variant_ops: Mapping[str, str],
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Reference name -> (the variant's tensor, its pre-QDQ tensor or None). QDQ pairs come from
    onnxruntime's ``create_activation_matching``; other tensors match by name."""
    # Its API takes a list of batches per name, as collect_activations returns them.
    pairs = qdq_debug().create_activation_matching({k: [v] for k, v in variant.items()})
    matched: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for name, ref_value in ref.items():
        if name in pairs:
            post = pairs[name]["post_qdq"][0]
            pre: np.ndarray | None = pairs[name]["pre_qdq"][0]
            if pre is not None and pre.shape != post.shape:
                pre = _real_channels(pre, post)
            relu_dropped = ref_ops.get(name) == "Relu" and variant_ops.get(name) != "Relu"
            if pre is not None and relu_dropped:
                # The quantizer dropped this Relu: the uint8 QDQ's clip at zero does its work, so
                # the tensor before the QDQ is the one before the Relu.
                pre = np.maximum(pre, 0)
            matched[name] = (post, pre)
        elif name in variant:
            matched[name] = (variant[name], None)
        else:
            continue
        if matched[name][0].size != ref_value.size:
            del matched[name]  # same name, different tensor: not comparable
    return matched


def compare_layers(
    reference: Path,
    variant: Path,
    images: str = "bundled",
    sizes: Sequence[Any] = DEFAULT_SIZES,
    jump_db: float = JUMP_DB,
) -> LayersResult:
    """Run the fp32 ``reference`` and ``variant`` (two ONNX exports of one model) on the same
    degraded photos, every intermediate tensor exposed, and compare them tensor by tensor."""
    if not math.isfinite(jump_db) or jump_db <= 0:
        raise EdgegenError(f"--jump-db must be a positive number of dB, got {jump_db}")
    var_path, spec, var_precision = _check_pair(reference, variant)
    samples = make_samples(spec, images, sizes)
    with tempfile.TemporaryDirectory(prefix="edgegen-layers-") as tmp:
        ref_run = ActivationRunner(reference, Path(tmp) / "reference.onnx")
        var_run = ActivationRunner(var_path, Path(tmp) / "variant.onnx")
        if not shared_intermediates(ref_run.tensors, ref_run.outputs, var_run.names()):
            raise EdgegenError(
                f"{var_path} shares no intermediate tensor name with {reference}: --per-layer "
                "needs two exports of the same model"
            )
        stats, exposed = _tensor_stats(ref_run, var_run, spec, samples)
    rows = layer_rows(ref_run.tensors, stats)
    matched = {r.name for r in rows}
    return LayersResult(
        settings={
            "images": images,
            "sizes": [size_label(s) for s in sizes],
            "photos": sorted({s.photo for s in samples}),
            "degradation": spec.degradation,
            "jump_db": jump_db,
            "sqnr_cap_db": SQNR_CAP,
            "provider": "cpu",
            "graph_optimization": "disabled",
        },
        reference={"name": reference.name, "path": str(reference), "precision": "fp32"},
        variant={"name": var_path.name, "path": str(var_path), "precision": var_precision},
        rows=rows,
        unmatched=[t.name for t in ref_run.tensors if t.name in exposed and t.name not in matched],
    )


def _check_pair(reference: Path, variant: Path) -> tuple[Path, ModelSpec, str]:
    """The variant's file, the reference's spec and the variant's precision, once both are
    known to be ONNX exports of one model (the reference fp32)."""
    if not reference.exists():
        raise EdgegenError(f"reference {reference}: no such file or folder")
    if reference.is_dir() or reference.suffix != ".onnx":
        raise EdgegenError(
            f"reference {reference}: --per-layer needs an fp32 ONNX file (a checkpoint's "
            "tensors have no ONNX names to match)"
        )
    found = expand_variants([variant])
    if len(found) != 1:
        raise EdgegenError(
            f"--per-layer compares one variant with the reference; {variant} holds "
            f"{len(found)}: {', '.join(p.name for p in found)}"
        )
    ref_spec = onnx_reference(reference).spec  # checks the spec and that it is fp32
    var_spec = onnx_runner(found[0]).spec
    mismatch = same_io(ref_spec, var_spec)
    if mismatch:
        raise EdgegenError(f"variant {found[0]} does not match the reference: {mismatch}")
    return found[0], ref_spec, var_spec.precision


def _tensor_stats(
    ref_run: ActivationRunner,
    var_run: ActivationRunner,
    spec: ModelSpec,
    samples: Sequence[Sample],
) -> tuple[dict[str, TensorStats], set[str]]:
    """Every matched tensor's error, photo by photo; and the reference's tensors seen."""
    ref_ops, var_ops = ref_run.ops(), var_run.ops()
    stats: dict[str, TensorStats] = {}
    exposed: set[str] = set()  # the reference's float tensors
    for sample in samples:
        batch = padded_input(spec, sample.degraded)
        if spec.layout == "NHWC":
            batch = np.ascontiguousarray(batch.transpose(0, 2, 3, 1))
        ref_acts = ref_run.infer(batch)
        var_acts = var_run.infer(batch)
        exposed |= set(ref_acts)
        for name, (post, pre) in match_activations(ref_acts, var_acts, ref_ops, var_ops).items():
            stats.setdefault(name, TensorStats()).add(ref_acts[name], post, pre)
        del ref_acts, var_acts  # a full photo's activations are large: one photo at a time
    return stats, exposed
