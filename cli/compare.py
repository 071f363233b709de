"""``edgegen compare``: builds the reference and variant runners and calls
:func:`edgegen.evaluation.compare.compare`; with ``--per-layer``,
:func:`edgegen.evaluation.layers.compare_layers`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from edgegen.evaluation.formats import FORMATS
from edgegen.runtime.errors import EdgegenError

from .options import FINITE, comma_list

if TYPE_CHECKING:
    from edgegen.evaluation.compare import CompareResult
    from edgegen.runners import Runner


@click.command("compare")
@click.option(
    "--reference",
    required=True,
    type=click.Path(path_type=Path),
    help="fp32 ONNX file (torch-free); or, in PyTorch (needs edgegen[train]), what export "
    "takes: a training run folder, a checkpoint, a state dict of a known architecture (.pth, "
    ".safetensors, ...) or pkg.module:factory with --reference-weights.",
)
@click.option(
    "--reference-weights",
    type=click.Path(path_type=Path),
    default=None,
    help="The state dict of a --reference pkg.module:factory.",
)
@click.argument("variants", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--providers",
    default=None,
    help="onnxruntime's, comma-separated: cpu, cuda, tensorrt (default: every one this "
    "onnxruntime offers).",
)
@click.option(
    "--runtimes",
    default="onnxruntime",
    show_default=True,
    help="What runs each variant, comma-separated: onnxruntime, openvino (edgegen[openvino], "
    "on the CPU, computing in f32), openvino:bf16 or openvino:f16 (its faster inference "
    "precisions, where the CPU has them), onnx-reference (onnx's reference evaluator: slow, "
    "independent of every runtime's kernels; use small --sizes), web (onnxruntime-web's WASM "
    "in Node, as a page runs it: Node and npm's onnxruntime-web; web:chromium in headless "
    "Chromium), arm64 (onnxruntime for "
    "aarch64 in the emulated root make check-arm64 builds: accuracy, not speed).",
)
@click.option(
    "--images",
    default="bundled",
    show_default=True,
    help="bundled (the held-out scikit-image photos) or a folder of photos.",
)
@click.option(
    "--sizes",
    default=None,
    help="Center crops of the model's input, e.g. 256,37x53,full (default: whole photos).",
)
@click.option("--max-lsb", type=FINITE, default=None, help="Max error vs reference, 8-bit steps.")
@click.option("--min-psnr", type=FINITE, default=None, help="Min PSNR vs the reference (dB).")
@click.option(
    "--max-psnr-drop",
    type=FINITE,
    default=None,
    help="Max drop of PSNR vs ground truth below the reference's own (dB).",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option(
    "--output", type=click.Path(path_type=Path), default=None, help="Write the report here."
)
@click.option("--repeats", type=int, default=3, show_default=True, help="Timed passes.")
@click.option(
    "--report",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Also write a self-contained offline HTML page to DIR/index.html.",
)
@click.option(
    "--per-layer",
    is_flag=True,
    help="Compare one VARIANT with the fp32 ONNX reference tensor by tensor (needs onnx).",
)
@click.option(
    "--jump-db",
    type=FINITE,
    default=None,
    help="--per-layer: the SQNR a tensor must lose against its inputs to be a jump [default: 10].",
)
def compare(
    reference: Path,
    reference_weights: Path | None,
    variants: tuple[Path, ...],
    providers: str | None,
    runtimes: str,
    images: str,
    sizes: str | None,
    max_lsb: float | None,
    min_psnr: float | None,
    max_psnr_drop: float | None,
    fmt: str,
    output: Path | None,
    repeats: int,
    report: Path | None,
    per_layer: bool,
    jump_db: float | None,
) -> int:
    """Compare VARIANTS (ONNX files; a folder means its model.*.onnx) with a reference, on real
    photos degraded as the reference's task says: error vs the reference in 8-bit steps (max,
    mean, % over 1 LSB), PSNR/SSIM vs the reference and vs the ground truth (and the drop from
    the reference's own), latency p50/p95 after warm-up and the first call, model size, and the
    providers that actually ran. SSIM needs scikit-image (null without it).

    Each variant runs on each of --runtimes: onnxruntime on each of --providers, OpenVINO
    (reading the same ONNX file) on the CPU; the table has a row per variant x runtime x
    provider x size, and a threshold holds for every one of them.

    --report DIR writes DIR/index.html, one offline page (no CDN, nothing fetched): per variant x
    provider its metrics, side-by-side center crops of each photo (degraded input, reference,
    variant, ground truth), an error heatmap vs the reference in LSB, and a p50/p95 latency
    chart. It is written even when a threshold breaks (the exit code is then still 1).

    --per-layer compares one VARIANT with an fp32 ONNX --reference tensor by tensor: both run
    on the CPU with every intermediate tensor exposed (onnxruntime's qdq_loss_debug, graph
    optimisations off), tensors matched by name (an int8 QDQ tensor by its dequantized value).
    It lists, in graph order, each matched tensor's SQNR (dB), its drop against the tensors
    its node reads, its max error in units of the tensor's range and, for int8, the SQNR of its
    own quantize/dequantize step; it marks every jump (a drop >= --jump-db) and names the first:
    where the variant first diverges. --images, --sizes (default here: 256, as every tensor of
    a photo is held in memory at once), --format and --output apply; the thresholds,
    --providers, --repeats and --report do not.

    \b
    Exit codes:
      0  every threshold holds (--per-layer: the report was made)
      1  a threshold is broken (each one printed: variant, provider and size)
      2  a usage or input error (a missing file, an unavailable provider, --per-layer with
         more than one variant or models that share no tensor name ...)
    """
    if per_layer:
        return _per_layer(reference, variants, images, sizes, fmt, output, jump_db)
    if jump_db is not None:
        raise EdgegenError("--jump-db applies only with --per-layer")
    from edgegen.evaluation.compare import Thresholds, compare, onnx_variants
    from edgegen.evaluation.samples import parse_sizes

    if repeats < 1:
        raise EdgegenError(f"--repeats must be >= 1, got {repeats}")
    devices = _devices(comma_list(providers, "--providers"), list(variants))
    ref = reference_runner(reference, reference_weights)
    result = compare(
        ref,
        onnx_variants(
            [Path(v) for v in variants],
            devices,
            ref.spec,
            comma_list(runtimes, "--runtimes") or ["onnxruntime"],
        ),
        images=images,
        sizes=parse_sizes(sizes) if sizes else ("full",),
        thresholds=Thresholds(max_lsb, min_psnr, max_psnr_drop),
        repeats=repeats,
        crops=report is not None,
    )
    if report is not None:
        _write_report(result, report)
    _print(result, fmt, output)
    for failure in result.failures:
        click.echo(f"edgegen: threshold broken: {failure}", err=True)
    return 0 if result else 1


def _devices(asked: list[str] | None, variants: list[Path]) -> list[str]:
    """The devices to run the variants on (after checking the variant files exist)."""
    from edgegen.evaluation.compare import check_devices, default_devices, expand_variants

    expand_variants(variants)
    return check_devices(asked) if asked else default_devices()


def reference_runner(path: Path, weights: Path | None = None) -> Runner:
    """An fp32 ONNX file (torch-free), or in PyTorch what export takes: a training run, a
    checkpoint, a state dict of a known architecture or a module factory."""
    from edgegen.evaluation.compare import onnx_reference

    factory = ":" in str(path) and not path.exists()
    if not (path.exists() or factory):
        raise EdgegenError(f"reference {path}: no such file or folder")
    if weights is not None and not factory:
        raise EdgegenError("--reference-weights goes with --reference pkg.module:factory")
    if path.is_file() and path.suffix.lower() in (".onnx", ".ort"):
        return onnx_reference(path)
    try:
        import torch  # noqa: F401

        from edgegen.runners.pytorch import TorchRunner
        from edgegen.train.networks import load_network
    except ModuleNotFoundError as exc:
        raise EdgegenError(
            f"reference {path} is a PyTorch network; running it needs {exc.name or 'torch'}, "
            "which is not installed: pip install 'edgegen[train]'"
        ) from None
    if factory:
        network = load_network(None, module=str(path), weights=weights)
    else:
        network = load_network(path)
    name = network.source.name if network.source else str(path)
    return TorchRunner(network.module, network.spec, name, network.source)


def _write_report(result: CompareResult, folder: Path) -> None:
    from edgegen.evaluation.report import write_report

    try:
        page = write_report(result, folder)
    except OSError as exc:
        raise EdgegenError(f"cannot write the report to {folder}: {exc.strerror or exc}") from None
    click.echo(f"edgegen: HTML report written to {page}", err=True)


def _print(result: CompareResult, fmt: str, output: Path | None) -> None:
    from edgegen.evaluation.formats import render

    if output is not None:
        _write_output(render(result, fmt), output)
        click.echo(f"{result.verdict}: report written to {output}")
    elif fmt == "table" and sys.stdout.isatty() and importlib.util.find_spec("rich"):
        _rich_table(result)
    else:
        click.echo(render(result, fmt))


def _write_output(text: str, output: Path) -> None:
    from edgegen.runtime.files import atomic_write_text

    try:
        atomic_write_text(output, text + "\n")
    except OSError as exc:
        raise EdgegenError(f"cannot write {output}: {exc.strerror or exc}") from None


# Options that mean nothing to --per-layer: given with it, they are a usage error, not ignored.
_NOT_PER_LAYER = ("providers", "max_lsb", "min_psnr", "max_psnr_drop", "repeats", "report")


def _per_layer(
    reference: Path,
    variants: tuple[Path, ...],
    images: str,
    sizes: str | None,
    fmt: str,
    output: Path | None,
    jump_db: float | None,
) -> int:
    from click.core import ParameterSource

    from edgegen.evaluation.formats import render
    from edgegen.evaluation.layers import DEFAULT_SIZES, JUMP_DB, compare_layers
    from edgegen.evaluation.samples import parse_sizes

    ctx = click.get_current_context()
    for name in _NOT_PER_LAYER:
        if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None):
            option = "--" + name.replace("_", "-")
            raise EdgegenError(f"{option} does not apply to --per-layer")
    if len(variants) != 1:
        raise EdgegenError(
            f"--per-layer compares one VARIANT with the reference; {len(variants)} given"
        )
    result = compare_layers(
        reference,
        variants[0],
        images=images,
        sizes=parse_sizes(sizes) if sizes else DEFAULT_SIZES,
        jump_db=JUMP_DB if jump_db is None else jump_db,
    )
    text = render(result, fmt)
    if output is not None:
        _write_output(text, output)
        click.echo(f"per-layer report written to {output}")
    else:
        click.echo(text)
    return 0


def _rich_table(result: Any) -> None:  # pragma: no cover - only on a terminal
    from rich.console import Console
    from rich.table import Table

    from edgegen.evaluation.formats import cells

    rows = cells(result.COLUMNS, result.records())
    table = Table(*rows[0])
    for row in rows[1:]:
        table.add_row(*row)
    console = Console()
    console.print(table)
    for line in result.summary():
        console.print(line, markup=False)
