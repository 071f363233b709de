"""``edgegen models``: the pretrained models that ship inside the package."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from edgegen.runtime.zoo import ShippedModel


def format_table(models: list[ShippedModel]) -> str:
    """The listing: one row per model and precision, its metrics last."""
    header = ("model", "task", "precision", "MB", "metrics (held-out photos)")
    rows = [header]
    for m in models:
        task = m.task if m.scale == 1 else f"{m.task} x{m.scale}"
        shown = [
            f"{m.labels.get(k, k)} {v:.2f}" for k, v in m.metrics.items() if k in m.labels
        ] or ["-"]
        rows.append((m.ref, task, m.precision, f"{m.size_bytes / 1e6:.2f}", "; ".join(shown)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join([*(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)), r[-1]]) for r in rows
    )


@click.command("models")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="json: every field, with the files' paths and sha256.",
)
def models(fmt: str) -> int:
    """List the pretrained models that ship with edgegen: name, task, precision, size and their
    metrics on the held-out photos (each folder's README.md is its model card).

    Run one with `edgegen run --model NAME[:PRECISION] INPUTS... -o OUT`; without --model,
    `edgegen run` uses denoise-blind:int8.

    \b
    Exit codes:
      0  listed
      2  a shipped manifest is unreadable
    """
    from edgegen.runtime.zoo import models_root, shipped_models

    found = shipped_models()
    if fmt == "json":
        click.echo(json.dumps([m.to_dict() for m in found], indent=2))
    else:
        click.echo(format_table(found))
        click.echo(f"model cards: {models_root()}/<model>/README.md")
    return 0
