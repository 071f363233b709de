"""``--precision auto``: the cheapest int8 model that meets an accuracy target.

Candidates, cheapest first; the first whose outputs on the held-out photos meet the target wins:

1. ``int8``: plain int8, exactly as ``--precision int8`` writes it (returned byte for byte);
2. ``calibration``: full int8 with the calibration method and range setting that does best on
   the ranking photos (:data:`CALIBRATIONS`);
3. ``mixed``: the nodes whose quantization costs most (one node at a time in float, measured on
   the ranking photos) kept in fp32, in groups of 1, 2, 4, ... nodes;
4. ``qat``: a short quantization-aware fine-tune (:mod:`edgegen.train.qat`), quantized with
   its learned ranges.

The ranking photos (bundled training photos) choose; the held-out photos, which neither
calibration nor ranking see, accept or refuse. When no candidate meets the target, only fp32
does (or nothing does), and :class:`TargetNotMet` says so (exit code 1): a float model is never
labelled int8. The chosen model's speed is measured side by side with fp32 on onnxruntime's CPU
provider (256x256, 2 threads), and the whole search goes into the manifest.
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from torch import nn

from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.spec import ModelSpec

from .evalset import RANKING_PHOTOS, EvalSet, held_out_set, measure, ranking_set
from .onnx_export import set_spec
from .sensitivity import NodeScore, groups, qdq_params, rank_int8_nodes, score
from .target import Measure, Target

Log = Callable[[str], None]

# (label, quantize_int8 keyword arguments), tried on the ranking photos after plain int8.
CALIBRATIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("minmax x128", {"method": "minmax", "count": 128}),
    ("percentile 99.999", {"method": "percentile"}),
    ("percentile 99.99", {"method": "percentile", "extra_options": {"CalibPercentile": 99.99}}),
    ("percentile 99.9", {"method": "percentile", "extra_options": {"CalibPercentile": 99.9}}),
    ("entropy", {"method": "entropy"}),
)
AUTO_QAT_STEPS = 100  # QAT's steps when auto gets that far and --qat is not given
SPEED_SIZE = 256
SPEED_THREADS = 2
MAX_FLOAT_SHARE = 0.5  # mixed precision keeps at most half the nodes in float


class TargetNotMet(EdgegenError):
    """No quantized candidate meets the target (exit code 1); nothing is written."""

    exit_code = 1


@dataclass
class Candidate:
    name: str
    path: str  # int8 | calibration | mixed | qat
    settings: dict[str, Any]
    held_out: Measure
    met: bool
    failures: list[str]
    seconds: float
    ranking: Measure | None = None
    nodes_in_float: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "met": self.met,
            "failures": self.failures,
            "held_out": self.held_out.to_dict(),
            "ranking": self.ranking.to_dict() if self.ranking else None,
            "nodes_in_float": self.nodes_in_float,
            "seconds": round(self.seconds, 2),
            "settings": _jsonable(self.settings),
        }


@dataclass
class AutoSettings:
    calib: str = "bundled"
    calib_count: int = 32
    calib_method: str = "minmax"
    per_channel: bool = True
    channel_pad: bool = True
    val: str = "bundled"
    qat_steps: int = AUTO_QAT_STEPS
    qat_loss: str = "l1"
    opset: int | None = None
    progress: bool = True


@dataclass
class AutoResult:
    target: Target
    chosen: Candidate
    candidates: list[Candidate]
    sensitivity: list[NodeScore]
    speed: dict[str, Any]
    seconds: float

    @property
    def label(self) -> str:
        """The spec's precision: ``mixed`` when any node stays in float, else ``int8``."""
        return "mixed" if self.chosen.nodes_in_float else "int8"

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": str(self.target),
            "path": self.chosen.path,
            "chosen": self.chosen.name,
            "nodes_in_float": self.chosen.nodes_in_float,
            "quality": self.chosen.held_out.to_dict(),
            "speed": self.speed,
            "candidates": [c.to_dict() for c in self.candidates],
            "sensitivity": [
                {"node": s.node, "op": s.op, "gain": s.gain, "ranking": s.measure.to_dict()}
                for s in self.sensitivity
            ],
            "held_out": "whole held-out photos (the verification photos), never used to choose",
            "ranking": "centre crops of bundled training photos: " + ", ".join(RANKING_PHOTOS),
            "seconds": round(self.seconds, 1),
        }


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def search(
    fp32_path: Path,
    out_path: Path,
    spec: ModelSpec,
    module: nn.Module,
    target: Target,
    settings: AutoSettings,
    log: Log = _stderr,
) -> AutoResult:
    """Write the first candidate that meets ``target`` to ``out_path``; raise TargetNotMet.

    The candidates, cheapest first: plain int8, the best calibration, mixed precision, QAT
    (each step starts from what the one before found)."""
    search = _Search(fp32_path, spec, module, target, settings, log)
    search.check_fp32()
    with tempfile.TemporaryDirectory(prefix="edgegen-auto-") as tmp_dir:
        search.tmp = Path(tmp_dir)
        for step in (search.plain, search.calibration, search.mixed, search.qat):
            found = step()
            if found is not None:
                return search.finish(*found, out_path)
    raise search.not_met()


Found = tuple[Candidate, Path]  # a candidate that meets the target, and its model file


class _Search:
    """The state of one search: the held-out and ranking photos, the candidates so far, and
    what each step hands the next (the best calibration, its fixed ranges)."""

    def __init__(
        self,
        fp32_path: Path,
        spec: ModelSpec,
        module: nn.Module,
        target: Target,
        settings: AutoSettings,
        log: Log,
    ) -> None:
        self.fp32_path, self.spec, self.module = fp32_path, spec, module
        self.target, self.settings, self.log = target, settings, log
        self.start = time.perf_counter()
        self.tmp = Path()
        self.held = held_out_set(spec, fp32_path, settings.val)
        self.candidates: list[Candidate] = []
        self.sensitivity: list[NodeScore] = []
        self._calib: dict[int, list[np.ndarray]] = {}
        self._ranking: EvalSet | None = None
        self.qat_note = ""
        # Handed on by the steps: plain int8, then the best calibration and its ranges.
        self.best: tuple[str, Path, dict[str, Any], Measure | None] = ("", Path(), {}, None)
        self.fixed: dict[str, list[dict[str, Any]]] = {}

    # -- helpers ---------------------------------------------------------------------------

    def calib(self, count: int) -> list[np.ndarray]:
        from .calib import calibration_inputs

        if count not in self._calib:
            self._calib[count] = calibration_inputs(self.spec, self.settings.calib, count)
        return self._calib[count]

    @property
    def ranking(self) -> EvalSet:
        if self._ranking is None:
            self._ranking = ranking_set(self.spec, self.fp32_path)
        return self._ranking

    def quantize(self, out: Path, calib: list[np.ndarray], **options: Any) -> dict[str, Any]:
        from .int8 import quantize_int8

        s = self.settings
        return quantize_int8(
            self.fp32_path, out, calib, per_channel=s.per_channel, progress=False,
            channel_pad=s.channel_pad, **options,
        )  # fmt: skip

    def check(
        self, name: str, path: str, model: Path, info: dict[str, Any], t0: float, **extra: Any
    ) -> Found | None:
        """Measure a candidate on the held-out photos; it is found when it meets the target."""
        m = measure(model, self.held)
        failures = self.target.failures(m)
        cand = Candidate(
            name, path, info, m, not failures, failures, time.perf_counter() - t0, **extra
        )
        self.candidates.append(cand)
        verdict = "meets the target" if cand.met else "misses: " + "; ".join(failures)
        self.log(f"auto: {name}: held-out {m.brief()}  -> {verdict}")
        return (cand, model) if cand.met else None

    # -- the steps -------------------------------------------------------------------------

    def check_fp32(self) -> None:
        fp32 = measure(self.fp32_path, self.held)
        if not self.target.met(fp32):
            raise TargetNotMet(
                f"not even fp32 meets --target {self.target}: "
                + "; ".join(self.target.failures(fp32))
            )

    def plain(self) -> Found | None:
        """1. plain int8, as --precision int8 makes it."""
        t0 = time.perf_counter()
        s = self.settings
        path = self.tmp / "int8.onnx"
        info = self.quantize(path, self.calib(s.calib_count), method=s.calib_method)
        name = f"int8 {s.calib_method}"
        self.best = (name, path, info, None)
        return self.check(name, "int8", path, info, t0)

    def calibration(self) -> Found | None:
        """2. the calibration that does best on the ranking photos."""
        t0 = time.perf_counter()
        plain_name, plain, plain_info, _ = self.best
        options = [(plain_name, plain, plain_info, measure(plain, self.ranking))]
        for label, kwargs in CALIBRATIONS:
            kwargs = dict(kwargs)
            count = int(kwargs.pop("count", self.settings.calib_count))
            path = self.tmp / f"calib{len(options)}.onnx"
            info = self.quantize(path, self.calib(count), **kwargs)
            m = measure(path, self.ranking)
            self.log(f"auto: calibration {label}: ranking {m.brief()}")
            options.append((label, path, info, m))
        label, path, info, rank = max(options, key=lambda o: score(self.target, o[3]))
        self.best = (label, path, info, rank)
        if path == plain:
            self.log("auto: no calibration beats plain int8 on the ranking photos")
            return None
        return self.check(f"int8 {label}", "calibration", path, info, t0, ranking=rank)

    def mixed(self) -> Found | None:
        """3. the most harmful nodes in float, the same ranges for everything else."""
        t0 = time.perf_counter()
        label, path, info, _ = self.best
        self.fixed = qdq_params(path)
        tiny = [np.zeros((1, self.spec.in_channels, 8, 8), np.float32)]  # every range is fixed

        def quantize_without(out: Path, nodes: list[str]) -> None:
            self.quantize(out, tiny, nodes_to_exclude=nodes, tensor_overrides=self.fixed)

        self.sensitivity = rank_int8_nodes(
            self.fp32_path, quantize_without, self.ranking, self.target, self.settings.progress
        )
        self.log(
            "auto: most harmful nodes: "
            + ", ".join(f"{s.node} ({s.gain:+.3f})" for s in self.sensitivity[:6])
        )
        limit = max(1, int(len(self.sensitivity) * MAX_FLOAT_SHARE))
        for k in groups(limit):
            nodes = [s.node for s in self.sensitivity[:k]]
            model = self.tmp / f"mixed{k}.onnx"
            quantize_without(model, nodes)
            found = self.check(
                f"int8 {label}, {k} node(s) in fp32", "mixed", model,
                {**info, "nodes_to_exclude": nodes}, t0, nodes_in_float=nodes,
            )  # fmt: skip
            if found is not None:
                return found
        return None

    def qat(self) -> Found | None:
        """4. a short quantization-aware fine-tune, from the best calibration's ranges."""
        s = self.settings
        if s.qat_steps <= 0:
            self.qat_note = " (QAT was not tried: --qat 0)"
            return None
        from edgegen.train.qat import check_supported

        try:
            check_supported(self.module)
        except EdgegenError as exc:
            self.qat_note = f" (QAT was not tried: {exc})"
            return None
        from .qat_ranges import quantize_with_qat, run_qat, start_from

        t0 = time.perf_counter()
        # From the best calibration's ranges: QAT then only has to improve on them.
        result = run_qat(self.module, self.spec, s.calib, s.calib_count, s.qat_steps,
                         s.progress, loss=s.qat_loss,
                         start=start_from(self.fp32_path, self.fixed))  # fmt: skip
        path = self.tmp / "qat.onnx"
        info = quantize_with_qat(
            self.module, result, self.spec, s.opset, path, self.calib(s.calib_count),
            s.per_channel, self.tmp, channel_pad=s.channel_pad,
        )  # fmt: skip
        info["qat"]["started_from"] = self.best[0]
        return self.check(f"QAT {s.qat_steps} steps", "qat", path, info, t0)

    # -- the end ---------------------------------------------------------------------------

    def finish(self, cand: Candidate, model: Path, out_path: Path) -> AutoResult:
        if cand.nodes_in_float:
            # Float nodes inside: the spec says "mixed", never "int8".
            proto = onnx.load(str(model))
            set_spec(proto, self.spec.replace(precision="mixed"))
            onnx.save(proto, str(out_path))
        else:
            shutil.copyfile(model, out_path)  # byte for byte what was measured
        speed = measure_speed(self.fp32_path, out_path, self.spec.in_channels)
        self.log(
            f"auto: chose {cand.name} ({cand.path}); {speed['speedup']:.2f}x fp32's speed "
            f"at {SPEED_SIZE}x{SPEED_SIZE}, {SPEED_THREADS} threads"
        )
        seconds = time.perf_counter() - self.start
        return AutoResult(self.target, cand, self.candidates, self.sensitivity, speed, seconds)

    def not_met(self) -> TargetNotMet:
        best = max(self.candidates, key=lambda c: score(self.target, c.held_out))
        return TargetNotMet(
            f"only fp32 meets --target {self.target}: the closest quantized candidate, "
            f"{best.name}, has {'; '.join(best.failures)} on the held-out photos" + self.qat_note
        )


def measure_speed(
    fp32_path: Path, model_path: Path, channels: int = 3, rounds: int = 6
) -> dict[str, Any]:
    """Median latency of fp32 and the chosen model, alternating blocks (edgegen bench's way)."""
    from edgegen.evaluation.timing import time_alternating
    from edgegen.runners import Runner, onnx_runner

    x = np.random.default_rng(0).random((1, channels, SPEED_SIZE, SPEED_SIZE), np.float32)
    # Without spinning: alternating two sessions on few cores, one's idle workers spinning after
    # its run steal the cores from the other's (benchmarks/int8_speed.py measured fp32 76 ms
    # alternating against 46 ms alone with spinning on).
    runners = {
        name: onnx_runner(path, "onnxruntime", "cpu", threads=SPEED_THREADS, spinning=False)
        for name, path in (("fp32", fp32_path), ("auto", model_path))
    }

    def call(runner: Runner) -> Callable[[], Any]:
        return lambda: runner.infer(x)

    times = time_alternating({name: call(r) for name, r in runners.items()}, rounds)
    fp32_ms = statistics.median(times["fp32"]) * 1000
    auto_ms = statistics.median(times["auto"]) * 1000
    return {
        "size": f"{SPEED_SIZE}x{SPEED_SIZE}",
        "threads": SPEED_THREADS,
        "provider": "CPUExecutionProvider",
        "fp32_ms": round(fp32_ms, 2),
        "auto_ms": round(auto_ms, 2),
        "speedup": round(fp32_ms / auto_ms, 3),
        "note": "medians of alternating blocks in one run; timings on a shared CPU are noisy",
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    return value
