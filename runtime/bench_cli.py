"""The ``edgegen bench`` command: a thin wrapper over :func:`edgegen.runtime.bench.bench`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .errors import EdgegenError
from .session_cli import session_options


@click.command("bench")
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--providers", default="cpu", show_default=True, help="Comma list: cpu, cuda, tensorrt."
)
@click.option("--sizes", default="256", show_default=True, help="Input sizes, e.g. 256,512x384.")
@click.option("--batch", "batches", default="1", show_default=True, help="Batch sizes, e.g. 1,4.")
@click.option("--threads", type=int, default=None, help="onnxruntime intra-op threads.")
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
    the speed-up against the first model, GFLOP/s and its share of a float32 matmul ceiling
    measured in the same run. The session options (--io-binding, --cuda-graph, ...) are
    Generator's; in a mixed --providers list the GPU-only ones apply to the GPU providers.

    \b
    Exit codes: 0 done; 2 bad input (a missing or non-ONNX model, an unavailable provider).
    """
    from .bench import bench as run_bench
    from .compare import check_devices, expand_variants, parse_sizes
    from .files import atomic_write_text

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
    result = run_bench(paths, devices, sizes_hw, batch_list, threads, checkpoint, rounds, session)
    click.echo(result.table())
    if json_path is not None:
        try:
            atomic_write_text(json_path, json.dumps(result.to_dict(), indent=2) + "\n")
        except OSError as exc:
            raise EdgegenError(f"cannot write {json_path}: {exc.strerror or exc}") from None
    return 0
