"""``edgegen run``: a model over image files, folders or globs (:mod:`edgegen.runtime.batch`)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from edgegen.runtime.errors import EdgegenError

from .options import DEVICE_HELP, session_options

_Item = TypeVar("_Item")


@click.command("run")
@click.argument("args", nargs=-1, required=True, metavar="[MODEL] INPUTS...")
@click.option(
    "-m",
    "--model",
    "model_name",
    default=None,
    help="An ONNX file or a shipped model, NAME[:PRECISION] (see `edgegen models`). "
    "[default: a first argument ending in .onnx/.ort, else denoise-blind:int8]",
)
@click.option(
    "-o", "--out", "outdir", required=True, type=click.Path(path_type=Path), help="Output folder."
)
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option(
    "--tile", type=int, default=None, help="Tile size (0: never tile; default: auto over 1 MP)."
)
@click.option("--overlap", type=int, default=None, help="Tile overlap in input pixels.")
@click.option(
    "--threads",
    type=int,
    default=None,
    help="onnxruntime intra-op threads (capped at the cores this process may use).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds one image may take; a slower one is stopped, skipped and listed.",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Images per onnxruntime call (same-size images go together).",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
@click.option(
    "--overwrite", is_flag=True, help="Replace outputs that exist (default: skip their inputs)."
)
@click.option(
    "--no-verify",
    is_flag=True,
    help="Load MODEL even if its sha256 differs from the manifest.json beside it.",
)
@click.option(
    "--runtime",
    default="onnxruntime",
    show_default=True,
    help="onnxruntime, or openvino (edgegen[openvino]: the same file on OpenVINO, computing in "
    "f32), openvino:bf16 or openvino:f16 (faster where the CPU has them; verify first).",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="local: this process. dask: a dask.distributed cluster (edgegen[cluster]); inputs and "
    "OUTDIR must be on a filesystem every worker sees.",
)
@click.option(
    "--address",
    default=None,
    help="dask: the scheduler to use (tcp://HOST:PORT). [default: a local cluster]",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="dask: worker processes of the local cluster. [default: one per core]",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="dask: how often a job that raised is retried before its images are listed as failed.",
)
@click.option(
    "--match-means/--no-match-means",
    default=None,
    help="Match each output's local colour means to its input's (undoes the colour shift a "
    "denoiser leaves, clipped dark noise included). [default: on for a Gaussian denoiser]",
)
@session_options
def run(
    args: tuple[str, ...],
    model_name: str | None,
    outdir: Path,
    device: str,
    tile: int | None,
    overlap: int | None,
    threads: int | None,
    timeout: float | None,
    batch: int,
    progress: bool | None,
    overwrite: bool,
    no_verify: bool,
    runtime: str,
    engine: str,
    address: str | None,
    workers: int | None,
    retries: int,
    match_means: bool | None,
    **session: Any,
) -> int:
    """Run MODEL on image files, folders or globs (INPUTS); write OUTDIR/<stem>.png for each.

    MODEL is an .onnx (or .ort) file given first, as in `edgegen run model.int8.onnx photos/ -o
    out/`, or --model FILE|NAME; without either the shipped blind denoiser runs:
    `edgegen run photo.jpg -o out/`.

    Outputs are written to a temporary name and renamed, so an output that exists is complete:
    inputs whose output exists are skipped (a rerun after a crash does the rest) unless
    --overwrite is given. An input is never overwritten, and OUTDIR may not be (or lie inside)
    an input folder. Among several inputs, unreadable images are skipped with a warning and
    listed at the end; a single input that cannot be read is an error. The same goes for an
    image the model fails on: NaN or inf in its output (never written as pixels), out of
    memory, or longer than --timeout. When MODEL has a manifest.json beside it, its sha256
    must match (--no-verify skips the check). Ctrl-C stops the running inference at once
    (exit 130); outputs written before it are complete, and a rerun does the rest.

    --engine dask runs the same on a dask.distributed cluster: a local one of --workers
    processes, or the scheduler at --address. Each worker opens the model once (its bytes are
    shipped to it and checked against their sha256) and reads and writes the files itself. A
    job that raises is retried (--retries); one whose worker dies runs again elsewhere, and the
    run says how many images that redid. Exit codes are the same.

    \b
    Exit codes:
      0  every image was processed (or its output already existed)
      1  some images could not be read or run (listed)
      2  bad input: model, options, OUTDIR, an unreadable single image, or no images found;
         a write that fails (disk full) also stops the run with exit 2
      130  interrupted (Ctrl-C)
    """
    from edgegen.runtime import batch as files
    from edgegen.runtime.generator import Generator
    from edgegen.runtime.limits import cap_threads

    if engine == "local" and (address is not None or workers is not None):
        raise EdgegenError("--address and --workers are options of --engine dask")
    model, inputs = pick_model(args, model_name)
    files.check_outdir(outdir, inputs)
    found = files.collect_inputs(inputs, outdir)
    threads, capped = cap_threads(threads)
    if capped is not None:
        click.echo(f"edgegen: note: {capped}", err=True)
    targets = files.plan_outputs(found, outdir)
    gen = Generator(
        model,
        device=device,
        threads=threads,
        tile=tile,
        overlap=overlap,
        verify_manifest=not no_verify,
        runtime=runtime,
        match_means=match_means,
        **session,
    )
    files.make_outdir(outdir)
    pairs = files.pending(found, targets, overwrite)
    if len(pairs) < len(found):
        click.echo(
            f"edgegen: {len(found) - len(pairs)} output(s) already exist, their inputs "
            "skipped (--overwrite replaces them)",
            err=True,
        )
    show = progress if progress is not None else sys.stderr.isatty()
    if engine == "dask" and pairs:
        del gen  # checked here (file, manifest, spec); each worker opens its own
        failures = _run_on_dask(
            model, pairs, batch, overwrite, show, address, workers, retries, timeout,
            dict(
                device=device, threads=threads, tile=tile, overlap=overlap, session=session,
                runtime=runtime, match_means=match_means,
            ),
        )  # fmt: skip
        if failures and len(found) == 1:  # a single input that fails is an error, as below
            raise EdgegenError(failures[0])
    else:
        failures = _run_here(gen, pairs, batch, len(found) == 1, show, timeout)
    if failures:
        click.echo(f"edgegen: {len(failures)} of {len(found)} image(s) failed:", err=True)
        for line in failures:
            click.echo(f"  {line}", err=True)
        return 1
    return 0


def _run_here(
    gen: Any, pairs: list[Any], batch: int, single: bool, show: bool, timeout: float | None
) -> list[str]:
    from edgegen.runtime import batch as files

    return files.run_files(
        gen,
        pairs,
        batch,
        single=single,
        warn=lambda line: click.echo(f"edgegen: warning: {line}", err=True),
        written=None if show else lambda src, dst: click.echo(f"{src} -> {dst}"),
        progress=lambda groups: _progress(groups, show),
        timeout=timeout,
    )


def _run_on_dask(
    model: Path,
    pairs: list[Any],
    batch: int,
    overwrite: bool,
    show: bool,
    address: str | None,
    workers: int | None,
    retries: int,
    timeout: float | None,
    options: dict[str, Any],
) -> list[str]:
    """``pairs`` through a dask cluster, a progress bar (or the ``src -> dst`` lines) fed
    from the jobs as they finish."""
    from edgegen.cluster import dask_engine
    from edgegen.cluster.jobs import FileJob, GeneratorOptions, JobResult, ModelFile
    from edgegen.runtime.files import remove_temps_of

    session = tuple(sorted(options.pop("session").items()))
    bar = _bar(len(pairs), show)

    def done(result: JobResult, images: int) -> None:
        if bar is not None:
            bar.update(images)
        else:
            for src, dst in result.written:
                click.echo(f"{src} -> {dst}")

    try:
        with dask_engine.dask_client(address, workers) as client:
            job = FileJob(
                ModelFile.ship(model),
                GeneratorOptions(session=session, **options),
                batch=batch,
                overwrite=overwrite,
                jobs_per_machine=dask_engine.jobs_per_machine(client),
                timeout=timeout,
            )
            paths = [(str(src), str(dst)) for src, dst in pairs]
            groups = dask_engine.job_groups(paths, batch, dask_engine.cluster_threads(client))
            run = dask_engine.run_groups(client, job, groups, retries=retries, done=done)
    finally:
        if bar is not None:
            bar.close()
        # Closing the local cluster stops its workers, mid-write when interrupted.
        remove_temps_of(Path(dst) for _, dst in pairs)
    if run.rerun:
        click.echo(f"edgegen: {run.rerun} image(s) ran again after their worker was lost", err=True)
    return run.failures


def _bar(total: int, show: bool) -> Any:
    """A tqdm bar over ``total`` images, when wanted and installed."""
    if not show or importlib.util.find_spec("tqdm") is None:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="img", file=sys.stderr)


def pick_model(args: tuple[str, ...], model: str | None) -> tuple[Path, tuple[str, ...]]:
    """``edgegen run``'s arguments -> (model file, inputs).

    ``--model`` (a file, or a shipped name) wins; otherwise a first argument ending in .onnx or
    .ort is the model (``edgegen run MODEL INPUTS...``); otherwise every argument is an input
    and the shipped default model runs.
    """
    from edgegen.runtime.zoo import DEFAULT_MODEL, MODEL_SUFFIXES, resolve

    if model is not None:
        path = Path(model)
        chosen = path if path.suffix.lower() in MODEL_SUFFIXES or path.exists() else resolve(model)
        inputs = args
    elif args and Path(args[0]).suffix.lower() in MODEL_SUFFIXES:
        chosen, inputs = Path(args[0]), args[1:]
    else:
        chosen, inputs = resolve(DEFAULT_MODEL), args
    if not inputs:
        raise EdgegenError("no INPUTS given: name image files, folders or globs to run on")
    return chosen, inputs


def _progress(items: list[_Item], show: bool) -> Iterator[_Item]:
    """A progress bar with tqdm or rich when installed and wanted; otherwise plain iteration."""
    if show and importlib.util.find_spec("tqdm") is not None:
        from tqdm import tqdm

        yield from tqdm(items, unit="batch", file=sys.stderr)
    elif show and importlib.util.find_spec("rich") is not None:
        from rich.progress import track

        yield from track(items, description="edgegen run")
    else:
        yield from items
