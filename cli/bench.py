"""``edgegen bench``: builds a runner per model x provider (and the PyTorch ones of
``--checkpoint``) and times them with :func:`edgegen.evaluation.bench.bench`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from edgegen.runtime.errors import EdgegenError

from .options import comma_list, for_device, session_options

if TYPE_CHECKING:
    from edgegen.runners import Runner


@click.command("bench")
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--providers", default="cpu", show_default=True, help="Comma list: cpu, cuda, tensorrt."
)
@click.option("--sizes", default="256", show_default=True, help="Input sizes, e.g. 256,512x384.")
@click.option("--batch", "batches", default="1", show_default=True, help="Batch sizes, e.g. 1,4.")
@click.option(
    "--runtimes",
    default="onnxruntime",
    show_default=True,
    help="What runs each model, comma-separated: onnxruntime (on each of --providers), "
    "openvino, openvino:bf16, openvino:f16 (edgegen[openvino], on the CPU), onnx-reference, "
    "web (onnxruntime-web's WASM in Node; web:chromium in headless Chromium), arm64 "
    "(emulated: qemu's speed, not an ARM CPU's).",
)
@click.option("--threads", type=int, default=None, help="Inference threads (every runtime).")
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    default=None,
    help="Also time this run/checkpoint in PyTorch eager and channels_last (edgegen[train]).",
)
@click.option(
    "--rounds", type=int, default=6, show_default=True, help="Alternating rounds of 5 calls."
)
@click.option(
    "--json", "json_path", type=click.Path(path_type=Path), default=None, help="Write results here."
)
@session_options
def bench(
    models: tuple[Path, ...],
    providers: str,
    runtimes: str,
    sizes: str,
    batches: str,
    threads: int | None,
    checkpoint: Path | None,
    rounds: int,
    json_path: Path | None,
    **session: Any,
) -> int:
    """Latency and throughput of exported models, per provider, size and batch.

    Runs alternate between models in short blocks (A B A B ...) and medians are reported, with
    the speed-up against the fp32 model on the first runtime (else the first model), GFLOP/s
    and its share of a float32 matmul ceiling measured in the same run. The session options
    (--io-binding, --cuda-graph, ...) are Generator's; in a mixed --providers list the GPU-only
    ones apply to the GPU providers, and they do not apply to the other --runtimes.

    \b
    Exit codes: 0 done; 2 bad input (a missing or non-ONNX model, an unavailable provider).
    """
    from edgegen.evaluation.bench import bench as run_bench
    from edgegen.evaluation.compare import check_devices, expand_variants
    from edgegen.evaluation.samples import parse_sizes
    from edgegen.runners import onnx_runner
    from edgegen.runtime.files import atomic_write_text
    from edgegen.runtime.limits import cap_threads

    if rounds < 1:
        raise EdgegenError(f"--rounds must be >= 1, got {rounds}")
    paths = expand_variants(list(models))
    devices = check_devices([p for p in providers.split(",") if p.strip()])
    size_list = [s for s in parse_sizes(sizes) if s != "full"]
    if not size_list:
        raise EdgegenError("--sizes needs at least one HxW size ('full' is not a bench size)")
    try:
        batch_list = [int(b) for b in batches.split(",") if b.strip()]
    except ValueError:
        raise EdgegenError(f"--batch must be integers, got {batches!r}") from None
    if not batch_list or min(batch_list) < 1:
        raise EdgegenError(f"--batch must be >= 1, got {batches!r}")
    sizes_hw = [s for s in size_list if isinstance(s, tuple)]
    threads, capped = cap_threads(threads)
    if capped is not None:
        click.echo(f"edgegen: note: {capped}", err=True)
    # GPU-only session options (--cuda-graph, ...) apply to the GPU providers of a mixed list;
    # the other runtimes take only the thread count.
    runners = []
    for m in paths:
        for runtime in comma_list(runtimes, "--runtimes") or ["onnxruntime"]:
            if runtime.split(":")[0] == "onnxruntime":
                runners += [
                    onnx_runner(m, runtime, d, threads=threads, **for_device(session, d))
                    for d in devices
                ]
            else:
                runners.append(onnx_runner(m, runtime, "cpu", threads=threads))
    if checkpoint is not None:
        runners += torch_runners(checkpoint)
    settings = {
        "models": [str(m) for m in paths],
        "providers": list(devices),
        "runtimes": comma_list(runtimes, "--runtimes"),
        "session": {k: v for k, v in session.items() if v not in (None, False)},
        "sizes": [f"{h}x{w}" for h, w in sizes_hw],
        "batches": batch_list,
        "threads": threads,
        "rounds": rounds,
        "checkpoint": str(checkpoint) if checkpoint else None,
    }
    result = run_bench(runners, sizes_hw, batch_list, rounds, settings, threads)
    click.echo(result.table())
    if json_path is not None:
        try:
            atomic_write_text(json_path, json.dumps(result.to_dict(), indent=2) + "\n")
        except OSError as exc:
            raise EdgegenError(f"cannot write {json_path}: {exc.strerror or exc}") from None
    return 0


def torch_runners(checkpoint: Path) -> list[Runner]:
    """The checkpoint's network in PyTorch eager and channels_last (needs edgegen[train])."""
    try:
        import torch  # noqa: F401

        from edgegen.train.checkpoint import load_runner
    except ModuleNotFoundError as exc:
        raise EdgegenError(f"--checkpoint needs {exc.name}: pip install 'edgegen[train]'") from None
    return [
        load_runner(checkpoint, name="torch eager"),
        load_runner(checkpoint, name="torch channels_last", channels_last=True),
    ]
