"""``edgegen train``: a thin click command over :func:`edgegen.train.trainer.train`.

Nothing from ``edgegen.train`` (torch) is imported until the command runs, so its ``--help``
works with only ``edgegen[cpu]`` installed."""

from __future__ import annotations

import os
from typing import Any

import click
from click.core import ParameterSource

from edgegen.runtime.errors import EdgegenError

from .options import FINITE

# Options default to None so that only those the user gave override a preset.
_RANGE = "NUMBER or LOW,HIGH"


@click.command("train")
@click.option(
    "--preset", help="A packaged preset (denoise-small, sr2-small, seed) or a .toml file."
)
@click.option("--task", help="denoise | sr | jpeg  [default: denoise]")
@click.option(
    "--sigma",
    metavar=_RANGE,
    help="Noise sigma in 8-bit steps; a range trains a blind denoiser. [default: 25]",
)
@click.option("--scale", type=int, help="Super-resolution factor: 2, 3 or 4. [default: 2 for sr]")
@click.option("--quality", metavar=_RANGE, help="JPEG quality, or a range. [default: 30]")
@click.option("--color", help="rgb | gray  [default: rgb]")
@click.option(
    "--arch",
    help="Architecture preset: tiny | small | medium (flat) or unet-tiny | unet (multi-scale "
    "U-Net)  [default: small]",
)
@click.option("--channels", type=int, help="Feature channels (overrides the arch preset).")
@click.option("--blocks", type=int, help="Residual blocks (overrides the arch preset).")
@click.option("--levels", type=int, help="Resolutions of a U-Net arch (overrides its preset).")
@click.option("--act", help="relu | prelu | lrelu  [default: relu]")
@click.option(
    "--batch-norm/--no-batch-norm",
    "batch_norm",
    default=None,
    help="BatchNorm in the blocks. [default: off]",
)
@click.option(
    "--act-after-add/--no-act-after-add",
    "act_after_add",
    default=None,
    help="Activation after each residual addition (the seed network). [default: off]",
)
@click.option("--res-scale", type=FINITE, help="Residual scaling s in y = x + s*F(x). [default: 1]")
@click.option(
    "--data", help="'bundled' (scikit-image's photos) or a folder of images. [default: bundled]"
)
@click.option(
    "--val", help="Held-out photos: 'bundled' or a folder. [default: the fixed split of --data]"
)
@click.option(
    "--augment",
    help="What may change in a training patch, comma-separated: flips, channels (RGB order), "
    "gamma (exposure, gamma, saturation), dark (dim scenes), bright (high-key scenes), or none. "
    "[default: flips]",
)
@click.option("--patch", type=int, help="Training patch size (output pixels). [default: 64]")
@click.option("--batch", type=int, help="Global batch size (split across DDP ranks). [default: 16]")
@click.option("--workers", type=int, help="DataLoader worker processes. [default: 1]")
@click.option(
    "--init",
    metavar="RUN",
    help="Start from RUN's best weights (a run folder or a .safetensors checkpoint of the same "
    "architecture) on a new schedule: fine-tune, e.g. with another --loss or --lr.",
)
@click.option("--steps", type=int, help="Optimizer steps. [default: 1000]")
@click.option("--minutes", type=FINITE, help="Train for about this long instead of --steps.")
@click.option("--loss", help="l1 | mse | charbonnier | psnr  [default: l1]")
@click.option("--optimizer", help="adam | adamw  [default: adamw]")
@click.option("--lr", type=FINITE, help="Peak learning rate. [default: 2e-3]")
@click.option(
    "--min-lr", type=FINITE, help="Learning rate at the end of the cosine. [default: 1e-5]"
)
@click.option("--weight-decay", type=FINITE, help="[default: 0]")
@click.option("--warmup", type=int, help="Linear warm-up steps. [default: 50]")
@click.option("--schedule", help="cosine | constant  [default: cosine]")
@click.option("--grad-clip", type=FINITE, help="Max gradient norm, 0 to disable. [default: 1]")
@click.option(
    "--ema",
    type=FINITE,
    help="Validate, save and export a moving average of the weights with this decay "
    "(0.999: about the last thousand steps); 0 for the weights of the last step. [default: 0]",
)
@click.option("--out", help="Run folder for checkpoints and metrics. [default: runs/train]")
@click.option("--val-every", type=int, help="Validate and checkpoint every K steps. [default: 250]")
@click.option("--seed", type=int, help="[default: 0]")
@click.option("--device", help="auto | cpu | cuda  [default: auto]")
@click.option("--amp/--no-amp", default=None, help="Mixed precision on CUDA. [default: on]")
@click.option(
    "--amp-dtype", help="bf16 | fp16 | auto (bf16 where the GPU supports it)  [default: auto]"
)
@click.option(
    "--channels-last/--no-channels-last",
    "channels_last",
    default=None,
    help="NHWC memory format on CUDA. [default: on]",
)
@click.option(
    "--compile/--no-compile",
    "compile",
    default=None,
    help="torch.compile the training step's forward pass (slow first steps). [default: off]",
)
@click.option("--resume", metavar="RUN", help="Continue RUN's schedule to its final step.")
@click.option(
    "--qat-from",
    metavar="RUN",
    help="Quantization-aware fine-tune RUN for int8 (--steps, default 100; --data; --out): "
    "export --precision int8 of the new run uses its learned ranges.",
)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@click.pass_context
def train(
    ctx: click.Context, resume: str | None, qat_from: str | None, progress: bool, **options: Any
) -> None:
    """Train a residual generator on photos.

    \b
    Examples:
      edgegen train --preset denoise-small --out runs/dn
      edgegen train --task sr --scale 2 --arch small --data ~/photos --minutes 30
      edgegen train --resume runs/dn
      edgegen train --preset denoise-small --init runs/dn --loss mse --lr 2e-4 --out runs/dn-mse
      edgegen train --qat-from runs/dn --steps 100 --out runs/dn-qat
      torchrun --nproc-per-node 2 -m edgegen.cli train --preset denoise-small

    Exit codes: 0 done; 2 bad options or input (one line on stderr).
    """
    from edgegen.train.config import build_config
    from edgegen.train.trainer import train as run_training

    given = {
        k: v
        for k, v in options.items()
        if ctx.get_parameter_source(k) is not ParameterSource.DEFAULT and k != "preset"
    }
    if qat_from is not None:
        _qat(qat_from, given, options, resume, progress)
        return
    if resume is not None:
        # A resumed run keeps its recorded settings; only where it runs may change.
        changed = sorted(set(given) - {"workers", "device"})
        if changed or options["preset"]:
            names = ", ".join(
                "--" + n.replace("_", "-")
                for n in changed + (["preset"] if options["preset"] else [])
            )
            raise click.UsageError(
                f"--resume continues a run as recorded; it cannot change {names}"
            )
    cfg = build_config(options["preset"], given)
    result = run_training(cfg, resume=resume, progress=progress)
    best = result.best
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for the run
        return
    click.echo(
        f"done: {result.run}  step {result.step}/{result.total_steps}  "
        f"val PSNR {result.metrics.get('psnr', float('nan')):.2f} dB "
        f"(input {result.metrics.get('input_psnr', float('nan')):.2f} dB)  "
        f"SSIM {result.metrics.get('ssim', float('nan')):.4f}  "
        f"best {best['psnr']:.2f} dB at step {best['step']}"
        + (f"  {result.patches_per_s:.1f} patches/s" if result.patches_per_s else "")
    )


def _qat(
    source: str, given: dict[str, Any], options: dict[str, Any], resume: str | None, progress: bool
) -> None:
    from edgegen.train.qat import qat_from_run

    other = sorted(set(given) - {"steps", "data", "out"})
    if resume is not None or options["preset"] or other:
        names = ["--resume"] if resume is not None else []
        names += ["--preset"] if options["preset"] else []
        names += ["--" + n.replace("_", "-") for n in other]
        raise click.UsageError(
            f"--qat-from fine-tunes a run as trained; it takes --steps, --data and --out, "
            f"not {', '.join(names)}"
        )
    if given.get("steps") is not None and given["steps"] < 1:
        raise EdgegenError(f"--steps must be >= 1, got {given['steps']}")
    out = given.get("out") or "runs/train"
    path, result = qat_from_run(source, out, given.get("steps"), given.get("data"), progress)
    click.echo(
        f"done: {path.parent}  QAT {result.steps} steps in {result.seconds:.0f} s, "
        f"final loss {result.losses[-1] if result.losses else float('nan'):.4f}; "
        f"export it with: edgegen export {path.parent} --precision int8"
    )
