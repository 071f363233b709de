"""Speed of exported models: latency and throughput per model x provider x size x batch.

Every model runs through a runner (an ONNX file on a provider, or the PyTorch module in eager
or channels_last mode), in alternating blocks (A B A B ...: :mod:`.timing`), so a noisy machine
slows every model alike, and the report gives medians and ratios. Each model's work is counted
in GFLOP (from the spec's architecture: convolutions only, which is where these generators spend
their time) and the achieved GFLOP/s is set against a ceiling measured in the same run on the
same device (a large float32 matrix multiply).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from edgegen.runners import Runner
from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.limits import check_memory
from edgegen.runtime.session import create_session
from edgegen.runtime.session_config import SessionConfig
from edgegen.runtime.spec import ModelSpec

from .formats import Column, cells, text_table
from .timing import Call, time_alternating


def conv_gflop(spec: ModelSpec, height: int, width: int, batch: int = 1) -> float | None:
    """GFLOP (2 per multiply-add) of one forward pass of edgegen's ResidualGenerator at an input
    of ``height`` x ``width``; None for architectures this formula does not know."""
    if spec.arch != "residual_generator":
        return None
    p = spec.arch_params
    c, blocks, s = int(p["channels"]), int(p["blocks"]), int(p.get("scale", spec.scale))
    cin, cout = int(p.get("in_channels", 3)), int(p.get("out_channels", 3))
    k = 9  # 3x3 kernels
    low = height * width
    macs = low * k * (cin * c + 2 * blocks * c * c + c * c)  # head, blocks, body tail
    if s > 1:
        macs += low * k * c * c * s * s  # the sub-pixel conv, at low resolution
        macs += low * s * s * k * c * cout  # the tail, at output resolution
    else:
        macs += low * k * c * cout
    return 2.0 * macs * batch / 1e9


# An ONNX graph of one MatMul, c = a @ b with dynamic n x n inputs (opset 13), serialized once
# with onnx.helper: the runtime cannot import onnx, and the ceiling should come from the same
# engine (onnxruntime's MLAS) and threads that run the models, not from numpy's BLAS.
_MATMUL_ONNX = (
    "CAg6YAoRCgFhCgFiEgFjIgZNYXRNdWwSBm1hdG11bFoVCgFhEhAKDggBEgoKAxIBbgoDEgFuWhUKAWISEAoOCAES"
    "CgoDEgFuCgMSAW5iFQoBYxIQCg4IARIKCgMSAW4KAxIBbkIECgAQDQ=="
)


def matmul_ceiling(threads: int | None = None, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a float32 n x n matrix multiply in onnxruntime on the CPU (best of repeats)."""
    import base64

    session = create_session(base64.b64decode(_MATMUL_ONNX), config=SessionConfig(threads=threads))
    rng = np.random.default_rng(0)
    feeds = {
        "a": rng.random((n, n), dtype=np.float32),
        "b": rng.random((n, n), dtype=np.float32),
    }
    session.run(None, feeds)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - t0)
    return 2.0 * n**3 / min(times) / 1e9


@dataclass
class BenchRow:
    model: str
    provider: str
    size: str
    batch: int
    median_ms: float
    p95_ms: float
    images_per_s: float
    gflop: float | None
    gflop_per_s: float | None
    pct_of_ceiling: float | None
    speedup: float | None = None  # baseline median / this median, same size and batch
    runtime: str = "onnxruntime"  # what ran it: onnxruntime, openvino, openvino:bf16, torch


@dataclass
class BenchResult:
    settings: dict[str, Any]
    ceiling_gflop_per_s: float | None
    rows: list[BenchRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "ceiling_gflop_per_s": self.ceiling_gflop_per_s,
            "rows": [asdict(r) for r in self.rows],
        }

    # header, BenchRow field, format: a missing value (None) is "-", padded like the others.
    COLUMNS: ClassVar[tuple[Column, ...]] = (
        ("model", "model", "s"),
        ("runtime", "runtime", "s"),
        ("provider", "provider", "s"),
        ("size", "size", "s"),
        ("batch", "batch", "d"),
        ("p50 ms", "median_ms", ".2f"),
        ("p95 ms", "p95_ms", ".2f"),
        ("img/s", "images_per_s", ".1f"),
        ("GFLOP", "gflop", ".2f"),
        ("GFLOP/s", "gflop_per_s", ".1f"),
        ("% ceil", "pct_of_ceiling", ".1f"),
        ("vs fp32", "speedup", "s"),  # "1.25x"
    )

    def table(self) -> str:
        """Right-aligned columns as wide as their widest cell, so that a missing value or a
        long model name never shifts the columns after it."""
        records = [
            {**asdict(r), "speedup": None if r.speedup is None else f"{r.speedup:.2f}x"}
            for r in self.rows
        ]
        lines = text_table(cells(self.COLUMNS, records))
        if self.ceiling_gflop_per_s is not None:
            lines.append(
                f"ceiling: onnxruntime float32 2048x2048 MatMul, {self.ceiling_gflop_per_s:.1f} "
                "GFLOP/s (int8 can exceed it: it is a float ceiling)"
            )
        return "\n".join(lines)


def bench(
    runners: Sequence[Runner],
    sizes: Sequence[tuple[int, int]] = ((256, 256),),
    batches: Sequence[int] = (1,),
    rounds: int = 6,
    settings: Mapping[str, Any] | None = None,
    threads: int | None = None,
) -> BenchResult:
    """Time every runner x size x batch in alternating blocks. ``settings`` are recorded in the
    result as they are (the command's options); ``threads`` is the ceiling's."""
    if not runners:
        raise EdgegenError("no models to benchmark")
    devices = {r.device for r in runners}
    ceiling = matmul_ceiling(threads) if "cpu" in devices else None
    result = BenchResult(dict(settings or {}), ceiling)
    for h, w in sizes:
        for n in batches:
            result.rows += _bench_shape(runners, h, w, n, rounds, ceiling)
    return result


def _key(runner: Runner) -> str:
    """A runner's name in the timings: an ONNX file per runtime and device, a PyTorch variant
    by its name."""
    info = runner.info
    return runner.name if info.runtime == "torch" else f"{runner.name}@{info.runtime}@{info.device}"


def _bench_shape(
    runners: Sequence[Runner], h: int, w: int, n: int, rounds: int, ceiling: float | None
) -> list[BenchRow]:
    calls: dict[str, Call] = {}
    by_key: dict[str, Runner] = {}
    for runner in runners:
        spec = runner.spec
        # input and output, before any activation: a size past this can never run here
        values = n * h * w * (spec.in_channels + spec.out_channels * spec.scale**2)
        check_memory(4 * values, f"a {n}x{spec.in_channels}x{h}x{w} batch")
        x = np.random.default_rng(0).random((n, spec.in_channels, h, w), np.float32)
        key = _key(runner)
        calls[key] = _bind(runner.infer, x)
        by_key[key] = runner
    times = time_alternating(calls, rounds)
    # Speed-ups are against the fp32 model when there is one (else the first model): the first
    # runtime's, onnxruntime's unless the command put another first.
    base_key = next((k for k in times if "fp32" in k), next(iter(times)))
    base = statistics.median(times[base_key])
    rows = []
    for key, ts in times.items():
        runner = by_key[key]
        median = statistics.median(ts)
        gflop = conv_gflop(runner.spec, h, w, n)
        rate = gflop / median if gflop is not None else None
        rows.append(
            BenchRow(
                model=runner.name,
                runtime=runner.info.runtime,
                provider=runner.device,
                size=f"{h}x{w}",
                batch=n,
                median_ms=median * 1000,
                p95_ms=float(np.percentile(ts, 95)) * 1000,
                images_per_s=n / median,
                gflop=gflop,
                gflop_per_s=rate,
                pct_of_ceiling=(100 * rate / ceiling) if rate and ceiling else None,
                speedup=base / median,
            )
        )
    return rows


def _bind(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> Call:
    return lambda: fn(x)
