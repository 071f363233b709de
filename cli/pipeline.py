"""``edgegen pipeline``: a thin click command over :func:`edgegen.pipeline.run_pipeline`."""

from __future__ import annotations

from typing import Any

import click

from edgegen.pipeline import AUTO_TARGET, DEMO_PRECISIONS, PipelineConfig, run_pipeline


def _precisions(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip())


@click.command("pipeline")
@click.option(
    "--preset",
    default="denoise-small",
    show_default=True,
    help="A packaged training preset or a .toml file.",
)
@click.option("--out", default="runs/demo", show_default=True, help="A new (or empty) folder.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="[default: the preset's]")
@click.option(
    "--val-every", type=click.IntRange(min=1), default=None, help="Validate every K steps."
)
@click.option(
    "--precision",
    default=",".join(DEMO_PRECISIONS),
    show_default=True,
    callback=_precisions,
    help="Comma list of fp32, fp16, int8, auto.",
)
@click.option("--calib-count", type=click.IntRange(min=1), default=32, show_default=True)
@click.option(
    "--target", default=AUTO_TARGET, show_default=True, help="What auto must meet (see export)."
)
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--progress/--no-progress", default=True, help="Progress bars.")
def pipeline(**options: Any) -> int:
    """Train a preset, export it (fp32, fp16, int8, auto), verify every artifact, compare them on
    the held-out photos and write the HTML report: the whole flow, as `make demo` runs it.

    OUT gets train/ (the run), export/ (the artifacts with manifests and golden samples),
    report/index.html, compare.json and summary.txt. Prints each stage with its duration, then
    the summary table and the report's path.

    \b
    Example:
      edgegen pipeline --preset denoise-small --steps 300 --out runs/demo

    \b
    Exit codes:
      0  every stage ran and every artifact passed
      1  an artifact broke its tolerance (export or golden-sample verification)
      2  bad input: preset, options, or an OUT that already holds files
    """
    result = run_pipeline(PipelineConfig(**options))
    click.echo(result.summary)
    click.echo(f"report: {result.report}")
    return 0
