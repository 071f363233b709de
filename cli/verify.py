"""``edgegen verify``: a model on this machine against its golden samples."""

from __future__ import annotations

from pathlib import Path

import click

from .options import DEVICE_HELP


@click.command("verify")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option(
    "--runtime",
    default="onnxruntime",
    show_default=True,
    help="What runs the golden samples: onnxruntime, openvino, openvino:bf16, openvino:f16 "
    "(edgegen[openvino]; on the CPU), onnx-reference (onnx's reference evaluator), web "
    "(onnxruntime-web's WASM in Node, as a page runs it; web:chromium in headless "
    "Chromium), arm64 (onnxruntime for aarch64 in the emulated root make check-arm64 builds).",
)
@click.option(
    "--no-manifest",
    is_flag=True,
    help="Verify a model that has no manifest.json: its golden samples are then trusted "
    "as they are (the report says so).",
)
def verify(model: Path, device: str, runtime: str, no_manifest: bool) -> int:
    """Check MODEL on this machine against the golden samples export wrote beside it
    (model.<precision>.golden.npz): max error in 8-bit steps (LSB), % of values off by more than
    1 LSB and PSNR against the PyTorch outputs, at the precision's tolerance. --runtime runs them
    on another runtime than onnxruntime, as an app that deploys there would run the model.

    The model and its golden samples must match the sha256 recorded in the manifest.json
    export wrote beside them, so a copied or edited golden file cannot pass; a model without
    a manifest is verified only with --no-manifest.

    \b
    Exit codes:
      0  every tolerance is met
      1  the model computes differently here (report printed)
      2  unverifiable (no golden samples, no manifest, a golden file that does not match
         it) or bad input
    """
    from edgegen.runners import onnx_runner
    from edgegen.runtime.golden import trusted_golden, verify_golden

    if runtime.split(":")[0] != "onnxruntime" and device == "auto":
        device = "cpu"  # --device auto picks among onnxruntime's providers
    runner = onnx_runner(model, runtime, device)
    golden, note = trusted_golden(model, require_manifest=not no_manifest)
    report = verify_golden(golden, runner.infer, runner.spec, model, runner.providers)
    if note is not None:
        report.notes.append(note)
    backend = getattr(getattr(runner, "generator", None), "backend_note", None)
    if backend is not None:
        report.notes.append(backend)
    click.echo(report.table())
    return 0 if report else 1
