"""Speed of exported models: latency and throughput per model x provider x size x batch.

Runs alternate (A B A B ...) in short blocks, so a noisy machine slows every model alike, and
the report gives medians and ratios. Each model's work is counted in GFLOP (from the spec's
architecture: convolutions only, which is where these generators spend their time), the achieved
GFLOP/s is set against a ceiling measured in the same run on the same device (a large float32
matrix multiply), and with a checkpoint the same network in PyTorch eager (and channels_last) is
timed beside it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EdgegenError
from .spec import ModelSpec


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

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(
        base64.b64decode(_MATMUL_ONNX), options, providers=["CPUExecutionProvider"]
    )
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

    def table(self) -> str:
        head = (
            f"{'model':>22} {'provider':>9} {'size':>9} {'batch':>5} {'p50 ms':>8} "
            f"{'p95 ms':>8} {'img/s':>8} {'GFLOP':>7} {'GFLOP/s':>8} {'% ceil':>7} {'vs fp32':>8}"
        )
        lines = [head]
        for r in self.rows:

            def f(v: float | None, fmt: str) -> str:
                return format(v, fmt) if v is not None else "-"

            lines.append(
                f"{r.model:>22} {r.provider:>9} {r.size:>9} {r.batch:>5} {r.median_ms:8.2f} "
                f"{r.p95_ms:8.2f} {r.images_per_s:8.1f} {f(r.gflop, '7.2f')} "
                f"{f(r.gflop_per_s, '8.1f')} {f(r.pct_of_ceiling, '7.1f')} "
                f"{f(r.speedup, '7.2f')}x"
            )
        if self.ceiling_gflop_per_s is not None:
            lines.append(
                f"ceiling: onnxruntime float32 2048x2048 MatMul, {self.ceiling_gflop_per_s:.1f} "
                "GFLOP/s (int8 can exceed it: it is a float ceiling)"
            )
        return "\n".join(lines)


Call = Callable[[], Any]


SWITCH_PAUSE_S = 0.1


def time_alternating(
    calls: Mapping[str, Call], rounds: int, block: int = 5, pause: float = SWITCH_PAUSE_S
) -> dict[str, list[float]]:
    """Seconds per call for each entry, run in alternating blocks after one warm-up block.

    Each block starts with a ``pause`` and one untimed call. onnxruntime's idle workers spin
    (the default) for tens of milliseconds after a run; right after a switch, the previous
    session's spinning workers took a core from the next one. Measured on 2 cores with no pause,
    alternating fp32 and int8 sessions put the first two int8 calls of each block at 31 and 28 ms
    against 15.5 ms, and int8's p95 at twice its p50. A 0.1 s pause lets them go idle. The
    untimed call then wakes the next session's own workers."""
    for fn in calls.values():
        for _ in range(2):
            fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            time.sleep(pause)
            fn()
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return times


def bench(
    models: Sequence[Path],
    devices: Sequence[str] = ("cpu",),
    sizes: Sequence[tuple[int, int]] = ((256, 256),),
    batches: Sequence[int] = (1,),
    threads: int | None = None,
    checkpoint: Path | None = None,
    rounds: int = 6,
    session: dict[str, Any] | None = None,
) -> BenchResult:
    """Time every model x device x size x batch (and the checkpoint in PyTorch, if given)."""
    from .generator import Generator
    from .session_cli import for_device

    # GPU-only session options (--cuda-graph, ...) apply to the GPU providers of a mixed list.
    gens = [
        (m, d, Generator(m, device=d, threads=threads, tile=0, **for_device(session or {}, d)))
        for m in models
        for d in devices
    ]
    if not gens:
        raise EdgegenError("no models to benchmark")
    ceiling = matmul_ceiling(threads) if "cpu" in devices else None
    settings = {
        "models": [str(m) for m in models],
        "providers": list(devices),
        "session": {k: v for k, v in (session or {}).items() if v not in (None, False)},
        "sizes": [f"{h}x{w}" for h, w in sizes],
        "batches": list(batches),
        "threads": threads,
        "rounds": rounds,
        "checkpoint": str(checkpoint) if checkpoint else None,
    }
    result = BenchResult(settings, ceiling)
    for h, w in sizes:
        for n in batches:
            calls: dict[str, Call] = {}
            info: dict[str, tuple[str, str, ModelSpec]] = {}
            for model, device, gen in gens:
                x = np.random.default_rng(0).random((n, gen.spec.in_channels, h, w), np.float32)
                key = f"{model.name}@{device}"
                calls[key] = _bind(gen.infer, x)
                info[key] = (model.name, device, gen.spec)
            if checkpoint is not None:
                spec0 = gens[0][2].spec
                for name, fn in _torch_calls(checkpoint, spec0, n, h, w).items():
                    calls[name] = fn
                    info[name] = (name, "cpu", spec0)
            times = time_alternating(calls, rounds)
            # Speed-ups are against the fp32 model when there is one (else the first model).
            base_key = next((k for k in times if "fp32" in k), next(iter(times)))
            base = statistics.median(times[base_key])
            for key, ts in times.items():
                name, device, spec = info[key]
                median = statistics.median(ts)
                gflop = conv_gflop(spec, h, w, n)
                rate = gflop / median if gflop is not None else None
                result.rows.append(
                    BenchRow(
                        model=name,
                        provider=device,
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
    return result


def _bind(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> Call:
    return lambda: fn(x)


def _torch_calls(checkpoint: Path, spec: ModelSpec, n: int, h: int, w: int) -> dict[str, Call]:
    """PyTorch eager and channels_last of the checkpoint (needs edgegen[train])."""
    try:
        import torch

        from edgegen.train.checkpoint import load_model
    except ModuleNotFoundError as exc:
        raise EdgegenError(f"--checkpoint needs {exc.name}: pip install 'edgegen[train]'") from None
    model, _spec, _ckpt = load_model(checkpoint)
    cl_model, _spec, _ckpt = load_model(checkpoint)
    cl_model = cl_model.to(memory_format=torch.channels_last)
    x = torch.rand(n, spec.in_channels, h, w)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def eager() -> None:
        with torch.inference_mode():
            model(x)

    def channels_last() -> None:
        with torch.inference_mode():
            cl_model(x_cl)

    return {"torch eager": eager, "torch channels_last": channels_last}
