"""The ``edgegen run`` and ``edgegen verify`` commands: thin wrappers over :class:`Generator`."""

from __future__ import annotations

import glob
import importlib.util
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .errors import EdgegenError, ModelError
from .session_cli import session_options

if TYPE_CHECKING:
    import numpy as np

_Item = TypeVar("_Item")

DEVICE_HELP = "auto (TensorRT > CUDA > CPU), cpu, cuda or tensorrt; never a silent fallback."


@click.command("verify")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
def verify(model: Path, device: str) -> int:
    """Check MODEL on this machine against the golden samples export wrote beside it
    (model.<precision>.golden.npz): max error in 8-bit steps (LSB), % of values off by more than
    1 LSB and PSNR against the PyTorch outputs, at the precision's tolerance.

    \b
    Exit codes:
      0  every tolerance is met
      1  the model computes differently here (report printed)
      2  unverifiable (no golden samples) or bad input
    """
    from .generator import Generator

    report = Generator(model, device=device, tile=0).verify()
    click.echo(report.table())
    return 0 if report else 1


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
@click.option("--threads", type=int, default=None, help="onnxruntime intra-op threads.")
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
@session_options
def run(
    args: tuple[str, ...],
    model_name: str | None,
    outdir: Path,
    device: str,
    tile: int | None,
    overlap: int | None,
    threads: int | None,
    batch: int,
    progress: bool | None,
    overwrite: bool,
    no_verify: bool,
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
    listed at the end; a single input that cannot be read is an error. When MODEL has a
    manifest.json beside it, its sha256 must match (--no-verify skips the check).

    \b
    Exit codes:
      0  every image was processed (or its output already existed)
      1  some images could not be read (listed)
      2  bad input: model, options, OUTDIR, an unreadable single image, or no images found;
         a write that fails (disk full) also stops the run with exit 2
    """
    from .generator import Generator
    from .images import read_image, write_image
    from .zoo import pick_model

    if outdir.exists() and not outdir.is_dir():
        raise EdgegenError(f"output folder {outdir} is a file")
    model, inputs = pick_model(args, model_name)
    files = collect_inputs(inputs)
    check_outdir(outdir, inputs)
    targets = plan_outputs(files, outdir)
    gen = Generator(
        model,
        device=device,
        threads=threads,
        tile=tile,
        overlap=overlap,
        verify_manifest=not no_verify,
        **session,
    )
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgegenError(f"cannot create output folder {outdir}: {exc.strerror}") from None
    failures: list[str] = []
    show = progress if progress is not None else sys.stderr.isatty()
    pairs = list(zip(files, targets, strict=True))
    if not overwrite:
        pairs = [(src, dst) for src, dst in pairs if not dst.exists()]
        if len(pairs) < len(files):
            click.echo(
                f"edgegen: {len(files) - len(pairs)} output(s) already exist, their inputs "
                "skipped (--overwrite replaces them)",
                err=True,
            )
    chunks = [pairs[i : i + batch] for i in range(0, len(pairs), batch)]
    for group in _progress(chunks, show):
        chunk: list[tuple[Path, Path, np.ndarray]] = []
        for src, dst in group:
            try:
                chunk.append((src, dst, read_image(src)))
            except EdgegenError as exc:
                if len(files) == 1:
                    raise
                click.echo(f"edgegen: warning: skipped: {exc}", err=True)
                failures.append(f"{src}: {exc}")
        outs: list[np.ndarray | None]
        try:
            outs = list(gen.run_batch([image for _, _, image in chunk]))
        except EdgegenError:  # one bad image in the chunk: run them one by one to name it
            outs = []
            for src, _, image in chunk:
                try:
                    outs.append(gen(image))
                except ModelError:
                    raise
                except EdgegenError as exc:
                    if len(files) == 1:
                        raise
                    click.echo(f"edgegen: warning: skipped: {exc}", err=True)
                    failures.append(f"{src}: {exc}")
                    outs.append(None)
        for (src, dst, _), out in zip(chunk, outs, strict=True):
            if out is None:
                continue
            try:
                write_image(dst, out)
            except OSError as exc:  # a full disk or a vanished folder: stop, with one line
                raise EdgegenError(f"cannot write {dst}: {exc.strerror or exc}") from None
            if not show:
                click.echo(f"{src} -> {dst}")
    if failures:
        click.echo(f"edgegen: {len(failures)} of {len(files)} image(s) failed:", err=True)
        for line in failures:
            click.echo(f"  {line}", err=True)
        return 1
    return 0


def collect_inputs(inputs: Iterable[str]) -> list[Path]:
    """Files as given, image files in folders (recursive, sorted), glob matches; no duplicates."""
    from .images import IMAGE_SUFFIXES

    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            matches = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not matches:
                raise EdgegenError(f"input folder {path} holds no images")
        elif path.exists():
            matches = [path]
        else:
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not matches:
                raise EdgegenError(f"input {item}: no such file, and no files match it")
        found.extend(matches)
    unique: dict[Path, Path] = {}
    for p in found:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def check_outdir(outdir: Path, inputs: Iterable[str]) -> None:
    """Refuse an OUTDIR that is, or lies inside, an input folder: a rerun would take the outputs
    for inputs."""
    out = outdir.resolve()
    for item in inputs:
        folder = Path(item)
        if folder.is_dir() and out.is_relative_to(folder.resolve()):
            where = "is" if out == folder.resolve() else "lies inside"
            raise EdgegenError(
                f"output folder {outdir} {where} the input folder {folder}; choose another -o"
            )


def plan_outputs(files: list[Path], outdir: Path) -> list[Path]:
    """``OUTDIR/<stem>.png`` for each input; refuse name clashes and overwriting an input."""
    resolved_inputs = {p.resolve() for p in files}
    taken: dict[Path, Path] = {}
    targets = []
    for src in files:
        dst = outdir / f"{src.stem}.png"
        key = dst.resolve()
        if key in resolved_inputs:
            raise EdgegenError(f"output {dst} would overwrite the input {src}; choose another -o")
        if key in taken:
            raise EdgegenError(f"inputs {taken[key]} and {src} would both be written to {dst}")
        if dst.is_dir():
            raise EdgegenError(f"output {dst} is a folder; move it or choose another -o")
        taken[key] = src
        targets.append(dst)
    return targets


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
