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

from .evalset import RANKING_PHOTOS, held_out_set, measure, ranking_set
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
    opset: int = 17
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
    """Write the first candidate that meets ``target`` to ``out_path``; raise TargetNotMet."""
    from .calib import calibration_inputs
    from .int8 import quantize_int8

    start = time.perf_counter()
    held = held_out_set(spec, fp32_path, settings.val)
    fp32_measure = measure(fp32_path, held)
    if not target.met(fp32_measure):
        raise TargetNotMet(
            f"not even fp32 meets --target {target}: " + "; ".join(target.failures(fp32_measure))
        )
    candidates: list[Candidate] = []
    sensitivity: list[NodeScore] = []
    calib_cache: dict[int, list[np.ndarray]] = {}

    def calib(count: int) -> list[np.ndarray]:
        if count not in calib_cache:
            calib_cache[count] = calibration_inputs(spec, settings.calib, count)
        return calib_cache[count]

    def check(
        name: str, path: str, model: Path, info: dict[str, Any], t0: float, **extra: Any
    ) -> Candidate:
        m = measure(model, held)
        failures = target.failures(m)
        cand = Candidate(
            name, path, info, m, not failures, failures, time.perf_counter() - t0, **extra
        )
        candidates.append(cand)
        verdict = "meets the target" if cand.met else "misses: " + "; ".join(failures)
        log(f"auto: {name}: held-out {m.brief()}  -> {verdict}")
        return cand

    with tempfile.TemporaryDirectory(prefix="edgegen-auto-") as tmp_dir:
        tmp = Path(tmp_dir)

        def finish(cand: Candidate, model: Path) -> AutoResult:
            if cand.nodes_in_float:
                # Float nodes inside: the spec says "mixed", never "int8".
                proto = onnx.load(str(model))
                set_spec(proto, spec.replace(precision="mixed"))
                onnx.save(proto, str(out_path))
            else:
                shutil.copyfile(model, out_path)  # byte for byte what was measured
            speed = measure_speed(fp32_path, out_path, spec.in_channels)
            log(
                f"auto: chose {cand.name} ({cand.path}); {speed['speedup']:.2f}x fp32's speed "
                f"at {SPEED_SIZE}x{SPEED_SIZE}, {SPEED_THREADS} threads"
            )
            return AutoResult(
                target, cand, candidates, sensitivity, speed, time.perf_counter() - start
            )

        # 1. plain int8, as --precision int8 makes it
        t0 = time.perf_counter()
        plain = tmp / "int8.onnx"
        info = quantize_int8(
            fp32_path, plain, calib(settings.calib_count), method=settings.calib_method,
            per_channel=settings.per_channel, progress=False, channel_pad=settings.channel_pad,
        )  # fmt: skip
        cand = check(f"int8 {settings.calib_method}", "int8", plain, info, t0)
        if cand.met:
            return finish(cand, plain)

        # 2. the best calibration on the ranking photos
        ranking = ranking_set(spec, fp32_path)
        t0 = time.perf_counter()
        options: list[tuple[str, Path, dict[str, Any], Measure]] = [
            (cand.name, plain, info, measure(plain, ranking))
        ]
        for label, kwargs in CALIBRATIONS:
            kwargs = dict(kwargs)
            count = int(kwargs.pop("count", settings.calib_count))
            path = tmp / f"calib{len(options)}.onnx"
            got = quantize_int8(
                fp32_path, path, calib(count), per_channel=settings.per_channel,
                progress=False, channel_pad=settings.channel_pad, **kwargs,
            )  # fmt: skip
            m = measure(path, ranking)
            log(f"auto: calibration {label}: ranking {m.brief()}")
            options.append((label, path, got, m))
        best = max(options, key=lambda o: score(target, o[3]))
        best_label, best_path, best_info, best_rank = best
        if best_path != plain:
            cand = check(
                f"int8 {best_label}", "calibration", best_path, best_info, t0, ranking=best_rank
            )
            if cand.met:
                return finish(cand, best_path)
        else:
            log("auto: no calibration beats plain int8 on the ranking photos")

        # 3. mixed precision: the most harmful nodes in float, same ranges for everything else
        t0 = time.perf_counter()
        fixed = qdq_params(best_path)
        tiny = [np.zeros((1, spec.in_channels, 8, 8), np.float32)]  # every range is fixed

        def quantize_without(out: Path, nodes: list[str]) -> None:
            quantize_int8(
                fp32_path, out, tiny, per_channel=settings.per_channel, progress=False,
                nodes_to_exclude=nodes, tensor_overrides=fixed, channel_pad=settings.channel_pad,
            )  # fmt: skip

        sensitivity = rank_int8_nodes(
            fp32_path, quantize_without, ranking, target, settings.progress
        )
        log(
            "auto: most harmful nodes: "
            + ", ".join(f"{s.node} ({s.gain:+.3f})" for s in sensitivity[:6])
        )
        limit = max(1, int(len(sensitivity) * MAX_FLOAT_SHARE))
        for k in groups(limit):
            nodes = [s.node for s in sensitivity[:k]]
            path = tmp / f"mixed{k}.onnx"
            quantize_without(path, nodes)
            cand = check(
                f"int8 {best_label}, {k} node(s) in fp32", "mixed", path,
                {**best_info, "nodes_to_exclude": nodes}, t0, nodes_in_float=nodes,
            )  # fmt: skip
            if cand.met:
                return finish(cand, path)

        # 4. quantization-aware fine-tuning
        qat_note = " (QAT was not tried: --qat 0)" if settings.qat_steps <= 0 else ""
        if settings.qat_steps > 0:
            from edgegen.train.qat import check_supported

            try:
                check_supported(module)
            except EdgegenError as exc:
                qat_note = f" (QAT was not tried: {exc})"
        if not qat_note:
            from .qat import quantize_with_qat, run_qat, start_from

            t0 = time.perf_counter()
            # From the best calibration's ranges: QAT then only has to improve on them.
            result = run_qat(module, spec, settings.calib, settings.calib_count,
                             settings.qat_steps, settings.progress,
                             start=start_from(fp32_path, fixed))  # fmt: skip
            path = tmp / "qat.onnx"
            qinfo = quantize_with_qat(
                module, result, spec, settings.opset, path, calib(settings.calib_count),
                settings.per_channel, tmp, channel_pad=settings.channel_pad,
            )  # fmt: skip
            qinfo["qat"]["started_from"] = best_label
            cand = check(f"QAT {settings.qat_steps} steps", "qat", path, qinfo, t0)
            if cand.met:
                return finish(cand, path)

    best_try = max(candidates, key=lambda c: score(target, c.held_out))
    raise TargetNotMet(
        f"only fp32 meets --target {target}: the closest quantized candidate, {best_try.name}, "
        f"has {'; '.join(best_try.failures)} on the held-out photos" + qat_note
    )


def measure_speed(
    fp32_path: Path, model_path: Path, channels: int = 3, rounds: int = 6
) -> dict[str, Any]:
    """Median latency of fp32 and the chosen model, alternating blocks (edgegen bench's way)."""
    from edgegen.runtime.bench import time_alternating

    from .evalset import session
    from .onnx_export import INPUT_NAME, OUTPUT_NAME

    x = np.random.default_rng(0).random((1, channels, SPEED_SIZE, SPEED_SIZE), np.float32)
    # Without spinning: alternating two sessions on few cores, one's idle workers spinning after
    # its run steal the cores from the other's (benchmarks/int8_speed.py measured fp32 76 ms
    # alternating against 46 ms alone with spinning on).
    sessions = {
        "fp32": session(fp32_path, SPEED_THREADS, spin=False),
        "auto": session(model_path, SPEED_THREADS, spin=False),
    }

    def call(sess: Any) -> Callable[[], Any]:
        return lambda: sess.run([OUTPUT_NAME], {INPUT_NAME: x})

    calls = {name: call(sess) for name, sess in sessions.items()}
    times = time_alternating(calls, rounds)
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
