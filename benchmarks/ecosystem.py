"""The ecosystem's architectures through `edgegen export`, one table: what a user holding a
state dict of each gets.

Every architecture of the test zoo (tests/export/ecosystem_zoo.py: small configurations built
from spandrel's own classes, seeded random weights, BatchNorm statistics randomised) is saved as
a state dict (.pth, every other one .safetensors), loaded back the way `edgegen export FILE`
loads it, and exported to fp32, fp16 and int8 with default tolerances on the bundled held-out
photos. Recorded per architecture: the exporter that ran, each precision's verdict (or the first
failure), the measured receptive field, the max tiled-vs-whole error, and the seconds it took.

    .venv/bin/python benchmarks/ecosystem.py --out benchmarks/results/ecosystem.json
    .venv/bin/python benchmarks/ecosystem.py --archs SwinIR,ESRGAN   # a few
    .venv/bin/python benchmarks/ecosystem.py --table benchmarks/results/ecosystem.json  # README's
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _machine import describe

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "export"))

from ecosystem_zoo import ZOO, state_dict_of

from edgegen.export.transaction import ExportConfig, VerificationFailed, export_network
from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.files import atomic_write_text
from edgegen.train.networks import load_network

PRECISIONS = ("fp32", "fp16", "int8")


def save(arch: str, folder: Path, index: int) -> Path:
    import torch

    state = state_dict_of(arch)
    if index % 2:
        from safetensors.torch import save_file

        path = folder / f"{arch}.safetensors"
        save_file(state, str(path))
    else:
        path = folder / f"{arch}.pth"
        torch.save(state, path)
    return path


def export_one(arch: str, index: int, precisions: tuple[str, ...]) -> dict[str, Any]:
    start = time.perf_counter()
    row: dict[str, Any] = {"arch": arch}
    with tempfile.TemporaryDirectory(prefix=f"eco-{arch}-") as tmp:
        folder = Path(tmp)
        path = save(arch, folder, index)
        row["file"] = path.suffix
        try:
            network = load_network(path)
            config = ExportConfig(
                out=str(folder / "out"), precision=precisions, calib_count=8, progress=False
            )
            try:
                result = export_network(network, config)
                artifacts, failures = result.artifacts, []
                spec, info = result.spec, result.export_info
            except VerificationFailed as failed:
                artifacts, failures = failed.artifacts, failed.failures
                spec, info = failed.spec, failed.export_info
            reports = {a.precision: a.report for a in artifacts}
            for p in precisions:
                mine = [f for f in failures if f.startswith(p)]
                report = reports.get(p)
                if mine:
                    row[p] = "FAIL: " + mine[0]
                elif p not in reports:
                    row[p] = "not made"
                else:
                    row[p] = "pass"
                if report is not None and report.rows:
                    row[f"{p}_psnr_vs_torch"] = round(min(r.psnr_vs_torch for r in report.rows), 2)
            assert spec is not None
            row.update(
                scale=spec.scale,
                pad_multiple=spec.pad_multiple,
                exporter=info.get("exporter"),
                dynamo_failed=info.get("dynamo_failed"),
                why=info.get("why"),
                opset=info.get("opset"),
                batch=info.get("batch"),
                internal_pad_multiple=info.get("internal_pad_multiple"),
                receptive_field="global" if spec.global_field else spec.receptive_field,
                tiled_max_lsb=spec.tiled_max_lsb,
                supports_half=network.loader.get("supports_half"),
            )
        except EdgegenError as exc:
            row["error"] = str(exc)
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def _cell(value: Any) -> str:
    """One precision's verdict, short: pass, or the failure's measured cause."""
    if value is None:
        return "—"
    text = str(value)
    if text == "pass":
        return "pass"
    if text.startswith("FAIL: "):
        text = text[len("FAIL: ") :]
    return _short(text)


# What a table cell drops of a failure: the steps that led to the cause (which exporter, which
# input), the node's name, and everything after the cause's first sentence.
_LEADS = (
    re.compile(r"^torch\.onnx\.export \((?:trace|dynamo)\) failed(?: at opset \d+)?: "),
    re.compile(r"^the exported graph fails on onnxruntime at \d+x\d+: "),
    re.compile(r"^the graph failed on a [0-9x]+ input: "),
    re.compile(r"^\w+ at (?:batch \d+|\d+x\d+): "),
)


def _short(reason: str) -> str:
    """A failure's cause in a few words: ``Unsupported: ONNX export of operator Sort``."""
    text = reason.split(" (the trace, after")[0]
    for lead in _LEADS:
        text = lead.sub("", text)
    text = re.sub(r" node '[^']*'", " node", text)
    text = re.split(r"\. |\s\[|, Out parameter", text)[0].strip().rstrip(".")
    if len(text) > 90:
        text = text[:89].rstrip() + "…"
    return text.replace("|", "/")


def table(path: Path) -> str:
    """README's architecture table from a results file."""
    data = json.loads(path.read_text())
    lines = [
        "| architecture | exporter | fp32 | fp16 | int8 | receptive field | tiled max LSB |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in data["rows"]:
        if "error" in row:
            lines.append(f"| {row['arch']} | — | fails: {_short(row['error'])} | — | — | — | — |")
            continue
        field = row["receptive_field"]
        tiled = row["tiled_max_lsb"]
        cells = [_cell(row.get(p)) for p in PRECISIONS]
        lines.append(
            f"| {row['arch']} | {row['exporter']} | {' | '.join(cells)} | {field} | "
            f"{'—' if tiled is None else f'{tiled:.2f}'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default=None, help="comma list (default: the whole zoo)")
    parser.add_argument("--precision", default=",".join(PRECISIONS))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--table", type=Path, default=None, help="print a results file's table")
    args = parser.parse_args()
    if args.table:
        print(table(args.table))
        return
    archs = args.archs.split(",") if args.archs else list(ZOO)
    precisions = tuple(args.precision.split(","))
    rows = []
    for index, arch in enumerate(archs):
        row = export_one(arch, index, precisions)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        data = {"machine": describe(), "precisions": list(precisions), "rows": rows}
        atomic_write_text(args.out, json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
