"""``edgegen export``: a thin click command over
:func:`edgegen.export.transaction.export_checkpoint`."""

from __future__ import annotations

import math
from pathlib import Path

import click

from edgegen.export.onnx_export import DEFAULT_OPSET, EXPORTERS
from edgegen.export.transaction import (
    CALIB_METHODS,
    EXPORT_PRECISIONS,
    ExportConfig,
    VerificationFailed,
    export_network,
)
from edgegen.runtime.errors import EdgegenError
from edgegen.train.config import LOSSES


def _precisions(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in value.split(",") if p.strip())
    unknown = [p for p in names if p not in EXPORT_PRECISIONS]
    if unknown or not names:
        given = ", ".join(unknown) or repr(value)
        raise click.BadParameter(
            f"unknown precision {given}; choose from {', '.join(EXPORT_PRECISIONS)}"
        )
    return names


def _tolerances(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, dict[str, float]]:
    parsed: dict[str, dict[str, float]] = {}
    for item in values:
        try:
            key, number = item.split("=", 1)
            precision, name = key.split(".", 1)
            value = float(number)
            if not math.isfinite(value):  # a NaN limit could never fail
                raise ValueError(number)
            parsed.setdefault(precision, {})[name] = value
        except ValueError:
            raise click.BadParameter(
                f"{item!r} is not PRECISION.NAME=VALUE (e.g. int8.max_gt_psnr_drop=0.3)"
            ) from None
    return parsed


@click.command("export")
@click.argument("checkpoint", metavar="[RUN_OR_CHECKPOINT]", required=False)
@click.option("--out", required=True, help="Folder for the artifacts (created if needed).")
@click.option(
    "--module",
    "module_target",
    default=None,
    metavar="PKG.MOD:FACTORY",
    help="A network of your own: FACTORY() returns the nn.Module (pkg.module:factory or "
    "path/to/file.py:factory); its spec comes from an edgegen_spec attribute or from running it.",
)
@click.option(
    "--weights",
    default=None,
    metavar="FILE",
    help="--module's state dict (.pth, .pt, .ckpt, .bin, .safetensors), loaded strictly.",
)
@click.option(
    "--task",
    type=click.Choice(["denoise", "sr", "jpeg"]),
    default=None,
    help="What a third-party network does (default: sr when it upscales, else denoise).",
)
@click.option(
    "--degradation",
    default=None,
    metavar="KIND:KEY=VALUE",
    help="What it undoes, for verification photos: gaussian_noise:sigma=25, "
    "bicubic_downscale:scale=2, jpeg:quality=30 (default per task: these).",
)
@click.option(
    "--pad-multiple",
    type=click.IntRange(1, 1024),
    default=None,
    help="Height and width the network needs a multiple of (found by running --module, "
    "reported by the loader for a state dict).",
)
@click.option(
    "--exporter",
    type=click.Choice(EXPORTERS),
    default="auto",
    show_default=True,
    help="auto: torch.export (dynamo) with symbolic sizes, the TorchScript trace where it "
    "fails or its graph disagrees with the module; the manifest says which ran.",
)
@click.option(
    "--precision",
    default="fp32",
    show_default=True,
    callback=_precisions,
    help="Comma list of fp32, fp16, int8, auto (the cheapest int8 that meets --target).",
)
@click.option(
    "--target",
    default=None,
    metavar="SPEC",
    help="auto's accuracy target on the held-out photos, e.g. 'psnr-drop<=0.1' (dB of ground-"
    "truth PSNR below fp32), 'min-psnr>=45' (dB vs fp32), 'max-lsb<=2'; comma-join several.",
)
@click.option(
    "--fp16-block",
    type=click.Choice(["default", "auto"]),
    default="default",
    show_default=True,
    help="fp16: 'auto' also keeps in fp32 the nodes whose fp16 output breaks fp16's tolerance "
    "(found one node at a time on training photos).",
)
@click.option(
    "--qat",
    type=int,
    default=None,
    metavar="STEPS",
    help="Quantization-aware fine-tuning steps: int8 fine-tunes first; auto tries it last "
    "(default 100, 0 skips it).",
)
@click.option(
    "--qat-loss",
    type=click.Choice(LOSSES),
    default=None,
    help="QAT's loss [default: the one the edgegen run trained with, else l1].",
)
@click.option(
    "--opset",
    type=int,
    default=None,
    help=f"ONNX opset [default: {DEFAULT_OPSET}, or 18 for a dynamo graph that does not convert "
    "down].",
)
@click.option(
    "--calib",
    default="bundled",
    show_default=True,
    help="int8 calibration photos: 'bundled' (the training split) or a folder.",
)
@click.option("--calib-count", type=int, default=32, show_default=True, help="Calibration crops.")
@click.option(
    "--calib-method", type=click.Choice(CALIB_METHODS), default="minmax", show_default=True
)
@click.option(
    "--per-channel/--per-tensor", default=True, show_default=True, help="int8 weight scales."
)
@click.option(
    "--channel-pad/--no-channel-pad",
    default=True,
    show_default=True,
    help="int8: pad convs with zero channels where onnxruntime's fastest x86 int8 kernel needs "
    "it (3-channel head and tail); same output, faster on x86. --no-channel-pad for ARM targets.",
)
@click.option(
    "--int8-mode",
    type=click.Choice(["static", "dynamic"]),
    default="static",
    show_default=True,
    help="static: QDQ with calibration. dynamic is refused for conv generators (says why).",
)
@click.option(
    "--ort-format", is_flag=True, help="Also write model.<precision>.ort for minimal/mobile builds."
)
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Verify every artifact against the PyTorch model.",
)
@click.option(
    "--val",
    default="bundled",
    show_default=True,
    help="Held-out photos for verification and golden samples.",
)
@click.option(
    "--tolerance",
    "tolerances",
    multiple=True,
    callback=_tolerances,
    metavar="PREC.NAME=VALUE",
    help="Override a tolerance, e.g. fp16.min_psnr_vs_torch=55 (names: max_lsb, "
    "max_pct_over_1lsb, min_psnr_vs_torch, max_gt_psnr_drop).",
)
@click.option("--progress/--no-progress", default=True, help="Progress bar while calibrating.")
@click.option(
    "--web",
    "web_dir",
    type=click.Path(path_type=Path),
    help="Also pack the artifacts into a web page in this folder (as `edgegen web` does; "
    "needs onnxruntime-web from npm).",
)
def export(
    checkpoint: str | None,
    module_target: str | None,
    weights: str | None,
    task: str | None,
    degradation: str | None,
    pad_multiple: int | None,
    **options: object,
) -> int:
    """Export a network to verified ONNX artifacts.

    The network is an edgegen training run or checkpoint, a state dict of a known
    architecture (.pth, .pt, .ckpt, .bin or .safetensors of ESRGAN, SwinIR, HAT, SPAN,
    NAFNet, SCUNet, ...: detected from its keys by spandrel), or --module pkg.mod:factory
    with --weights FILE for a network of your own.

    Writes model.<precision>.onnx with model.<precision>.manifest.json and
    model.<precision>.golden.npz beside it, for each precision asked for. Each artifact is
    run on onnxruntime (CPU) and compared with the PyTorch model on held-out photos.

    \b
    Default tolerances against the PyTorch model:
      fp32  max_lsb=0.0255 (1e-4 on [0,1])
      fp16  min_psnr_vs_torch=60 dB, max_gt_psnr_drop=0.05 dB
      int8  max_gt_psnr_drop=0.25 dB (PSNR vs ground truth, below torch's),
            min_psnr_vs_torch=35 dB (what a device checks from the golden samples)

    With --precision auto --target SPEC it writes model.auto.onnx: the first of plain int8,
    int8 with the best calibration, int8 with the most sensitive nodes kept in fp32, and
    quantization-aware fine-tuned int8 that meets SPEC on the held-out photos (see the
    manifest's "auto" entry for the path taken, nodes kept in float, quality and speed).

    \b
    Exit codes:
      0  every artifact written and verified
      1  an artifact broke its tolerance, or only fp32 meets --target (nothing written)
      2  bad input: network, weights, options, target, calibration or output folder
    """
    from edgegen.train.networks import load_network, parse_degradation

    web_dir = options.pop("web_dir")
    config = ExportConfig(**options)  # type: ignore[arg-type]
    config.validate()
    ort_web = None
    if web_dir is not None:  # before the work: a missing onnxruntime-web is known at once
        from edgegen.runtime.web import find_ort_web

        ort_web = find_ort_web()
    network = load_network(
        checkpoint,
        module=module_target,
        weights=weights,
        task=task,
        degradation=parse_degradation(degradation) if degradation else None,
        pad_multiple=pad_multiple,
    )
    try:
        result = export_network(network, config)
    except VerificationFailed as failed:
        for artifact in failed.artifacts:
            _print_report(artifact.precision, artifact.report)
        raise
    except EdgegenError:
        raise
    for artifact in result.artifacts:
        _print_report(artifact.precision, artifact.report)
        if artifact.precision == "auto":
            _print_auto(artifact.manifest)
        click.echo(f"wrote {artifact.path}  ({artifact.size_bytes / 1e6:.2f} MB)")
    _print_export_facts(result)
    if ort_web is not None:
        from edgegen.runtime.web import pack

        pack([a.path for a in result.artifacts], Path(str(web_dir)), ort_web)
        click.echo(f"wrote {web_dir}: a web page of these models; try it: edgegen serve {web_dir}")
    return 0


def _print_export_facts(result: object) -> None:
    """Which exporter ran, the receptive field and the tiled error: what the manifest says."""
    import json
    from pathlib import Path

    artifacts = getattr(result, "artifacts", [])
    if not artifacts:
        return
    manifest = json.loads(Path(artifacts[0].manifest).read_text(encoding="utf-8"))
    spec = manifest["spec"]
    field = "global" if spec.get("global_field") else f"{spec.get('receptive_field')} px"
    tiled = spec.get("tiled_max_lsb")
    tiled_text = f"{tiled:g} LSB" if tiled is not None else "not measured"
    exporter = manifest.get("export", {}).get("exporter")
    if exporter is None:
        fp32 = Path(artifacts[0].path).with_name("model.fp32.manifest.json")
        if fp32.is_file():
            exporter = (
                json.loads(fp32.read_text(encoding="utf-8")).get("export", {}).get("exporter")
            )
    click.echo(
        f"{spec['arch']}: exporter {exporter or '-'}, receptive field {field}, "
        f"tiled vs whole {tiled_text}"
    )


def _print_auto(manifest_path: object) -> None:
    import json
    from pathlib import Path

    auto = json.loads(Path(str(manifest_path)).read_text(encoding="utf-8"))["auto"]
    q, speed = auto["quality"], auto["speed"]
    floats = ", ".join(auto["nodes_in_float"]) or "none"
    click.echo(
        f"auto: {auto['chosen']} (path: {auto['path']}) meets {auto['target']}: "
        f"PSNR drop {q['psnr_drop']:.3f} dB, {q['psnr_vs_fp32']:.2f} dB vs fp32, "
        f"max {q['max_lsb']:.2f} LSB; {speed['speedup']:.2f}x fp32 "
        f"({speed['auto_ms']:.1f} vs {speed['fp32_ms']:.1f} ms at {speed['size']}, "
        f"{speed['threads']} threads); nodes in float: {floats}; {auto['seconds']:.0f} s"
    )


def _print_report(precision: str, report: object) -> None:
    from edgegen.export.verify import Report

    if not isinstance(report, Report):
        click.echo(f"{precision}: not verified (--no-verify)")
        return
    status = "PASS" if report.passed else "FAIL"
    click.echo(f"{precision}: {status}")
    click.echo(report.table())
