"""``edgegen pipeline``: the whole flow in one command, as ``make demo`` runs it.

In order: train a preset on the bundled photos (progress shown), export it to every precision
asked for (each verified against PyTorch by the export itself), verify each artifact again on
this machine from its golden samples (the torch-free check a device runs), compare them on the
held-out photos with the PyTorch model as the reference, write the HTML report, and print a
summary table and the report's path.

Everything lands under ``OUT``::

    OUT/train/          the training run (checkpoints, metrics.jsonl)
    OUT/export/         model.<precision>.onnx, .manifest.json, .golden.npz
    OUT/report/         index.html (offline: crops, error heatmaps, latency chart)
    OUT/compare.json    the comparison, as ``edgegen compare --format json`` writes it
    OUT/summary.txt     the summary table, with how long each stage took

Each stage is the library's own function (no subprocess), so every file is written the way the
stages always write them: to a temporary name, then renamed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgegen.evaluation.compare import CompareResult, compare, onnx_variants
from edgegen.evaluation.formats import render
from edgegen.evaluation.report import write_report
from edgegen.export.transaction import (
    EXPORT_PRECISIONS,
    ExportConfig,
    ExportResult,
    VerificationFailed,
    export_checkpoint,
)
from edgegen.runners import onnx_runner
from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.files import atomic_write_text
from edgegen.runtime.golden import trusted_golden, verify_golden
from edgegen.train.checkpoint import load_runner

Log = Callable[[str], None]
STAGES = ("train", "export", "verify", "compare", "report")
DEMO_PRECISIONS = ("fp32", "fp16", "int8", "auto")
# What `auto` must meet in the demo: at most 0.2 dB below fp32 on the held-out photos. Plain int8
# of the demo's denoiser usually meets it, so the search stays short; a stricter target makes
# auto try other calibrations, then mixed precision, then a QAT fine-tune.
AUTO_TARGET = "psnr-drop<=0.2"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class PipelineConfig:
    """Fields equal the ``edgegen pipeline`` options."""

    preset: str = "denoise-small"
    out: str = "runs/demo"
    steps: int | None = None  # None: the preset's
    val_every: int | None = None
    precision: tuple[str, ...] = DEMO_PRECISIONS
    calib_count: int = 32
    target: str = AUTO_TARGET  # what auto must meet
    repeats: int = 3  # timed passes per photo in the comparison
    progress: bool = True


@dataclass
class PipelineResult:
    out: Path
    export: ExportResult
    verified: dict[str, bool]
    compare: CompareResult
    report: Path
    summary: str
    seconds: dict[str, float] = field(default_factory=dict)


def run_pipeline(config: PipelineConfig, log: Log = _stderr) -> PipelineResult:
    """Train, export, verify, compare and report; raises :class:`EdgegenError` (exit 2) on bad
    input before anything is written, and :class:`VerificationFailed` (exit 1) on a broken
    tolerance."""
    from edgegen.train.config import build_config
    from edgegen.train.trainer import train

    out = Path(config.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EdgegenError(
            f"--out {out} already exists and is not empty; remove it or choose another --out"
        )
    unknown = [p for p in config.precision if p not in EXPORT_PRECISIONS]
    if unknown or not config.precision:
        raise EdgegenError(
            f"unknown precision {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(EXPORT_PRECISIONS)}"
        )
    overrides: dict[str, Any] = {"out": str(out / "train")}
    if config.steps is not None:
        overrides["steps"] = config.steps
    if config.val_every is not None:
        overrides["val_every"] = config.val_every
    # Bad preset, options or target: exit 2 here, before any file is written.
    train_cfg = build_config(config.preset, overrides)
    export_config = ExportConfig(
        out=str(out / "export"),
        precision=config.precision,
        calib_count=config.calib_count,
        progress=config.progress,
        target=config.target if "auto" in config.precision else None,
    )
    export_config.validate()
    seconds: dict[str, float] = {}

    with _stage("train", seconds, log, f"{config.preset}, {train_cfg.steps} steps -> {out}/train"):
        trained = train(train_cfg, progress=config.progress, log=log)
    log(
        f"  val PSNR {trained.metrics.get('psnr', float('nan')):.2f} dB "
        f"(input {trained.metrics.get('input_psnr', float('nan')):.2f} dB), "
        f"best at step {trained.best.get('step', '?')}"
    )

    with _stage("export", seconds, log, f"{', '.join(config.precision)} -> {out}/export"):
        exported = _export(trained.run, export_config, log)

    with _stage("verify", seconds, log, "golden samples on onnxruntime CPU"):
        verified = _verify(exported, log)

    with _stage("compare", seconds, log, "vs the PyTorch model, on the held-out photos"):
        compared = _compare(trained.run, exported, config.repeats)
        atomic_write_text(out / "compare.json", render(compared, "json") + "\n")

    with _stage("report", seconds, log, f"{out}/report/index.html"):
        page = write_report(compared, out / "report")

    summary = summary_table(compared, verified, seconds)
    atomic_write_text(out / "summary.txt", summary + "\n")
    return PipelineResult(out, exported, verified, compared, page, summary, seconds)


@contextmanager
def _stage(name: str, seconds: dict[str, float], log: Log, what: str) -> Iterator[None]:
    number = STAGES.index(name) + 1
    log(f"edgegen pipeline [{number}/{len(STAGES)}] {name}: {what}")
    start = time.perf_counter()
    yield
    seconds[name] = time.perf_counter() - start
    log(f"edgegen pipeline [{number}/{len(STAGES)}] {name}: done in {seconds[name]:.0f} s")


def _export(run: Path, export_config: ExportConfig, log: Log) -> ExportResult:
    try:
        return export_checkpoint(run, export_config)
    except VerificationFailed as failed:
        for artifact in failed.artifacts:
            if artifact.report is not None:
                log(f"{artifact.precision}: {'PASS' if artifact.report.passed else 'FAIL'}")
                log(artifact.report.table())
        raise


def _compare(run: Path, exported: ExportResult, repeats: int) -> CompareResult:
    """Every artifact on the CPU against the trained PyTorch model, on the held-out photos."""
    reference = load_runner(run)
    variants = onnx_variants([a.path for a in exported.artifacts], ["cpu"], reference.spec)
    return compare(reference, variants, repeats=repeats, crops=True)


def _verify(exported: ExportResult, log: Log) -> dict[str, bool]:
    """Each artifact on onnxruntime CPU against its golden samples, without torch: what
    ``edgegen verify`` checks on a device."""
    verified: dict[str, bool] = {}
    for artifact in exported.artifacts:
        runner = onnx_runner(artifact.path, "onnxruntime", "cpu")
        golden, _ = trusted_golden(artifact.path)
        report = verify_golden(golden, runner.infer, runner.spec, artifact.path, runner.providers)
        verified[artifact.path.name] = bool(report)
        worst = max((r.max_lsb for r in report.rows), default=float("nan"))
        log(f"  {artifact.path.name}: {'PASS' if report else 'FAIL'} (max {worst:.3f} LSB)")
        if not report:
            log(report.table())
    failed = [name for name, ok in verified.items() if not ok]
    if failed:
        raise EdgegenError(
            f"{', '.join(failed)} computes differently on this machine than at export "
            "(golden samples); see the table above",
            exit_code=1,
        )
    return verified


def summary_table(
    compared: CompareResult, verified: dict[str, bool], seconds: dict[str, float]
) -> str:
    """One row per artifact, on the whole held-out photos: size, PSNR against the ground truth
    (and below PyTorch's own), largest error against PyTorch in 8-bit steps, median latency."""
    header = ("artifact", "MB", "GT PSNR dB", "vs torch dB", "max LSB", "p50 ms", "verified")
    ref = compared.reference
    torch_psnr = sum(r["gt_psnr"] for r in ref["rows"]) / len(ref["rows"])
    rows = [("PyTorch (reference)", "", f"{torch_psnr:.2f}", "", "", "", "")]
    for v in compared.variants:
        # compare() always measures against the ground truth: the spec names the degradation.
        gt = sum(r.gt_psnr or 0.0 for r in v.rows) / len(v.rows)
        rows.append(
            (
                v.name,
                f"{v.model_bytes / 1e6:.3f}",
                f"{gt:.2f}",
                f"{gt - torch_psnr:+.3f}",
                f"{max(r.max_lsb for r in v.rows):.3f}",
                f"{v.latency_p50_ms:.1f}",
                "PASS" if verified.get(v.name, False) else "FAIL",
            )
        )
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in (header, *rows)
    ]
    photos = ", ".join(compared.settings["photos"])
    lines.append(f"held-out photos: {photos}; degradation {compared.settings['degradation']}")
    lines.append(
        "stages: "
        + ", ".join(f"{name} {seconds[name]:.0f} s" for name in STAGES if name in seconds)
    )
    return "\n".join(lines)
