"""``edgegen verify``: a model on this machine against its golden samples."""

from __future__ import annotations

from pathlib import Path

import click

from .options import DEVICE_HELP


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
    from edgegen.runners import onnx_runner
    from edgegen.runtime.golden import golden_path, load_golden, verify_golden

    runner = onnx_runner(model, "onnxruntime", device)
    golden = load_golden(golden_path(model))
    report = verify_golden(golden, runner.infer, runner.spec, model, runner.providers)
    click.echo(report.table())
    return 0 if report else 1
