"""Every figure in the docs comes from a results file: a table (or paragraph) of measurements is
marked with the JSON under benchmarks/results/ it came from, the text above it names that file
and the command that wrote it, and every number in it is in the file.

A marker, on its own line right above the table or paragraph (invisible on GitHub and in the
site)::

    <!-- figures: benchmarks/results/cluster.json -->

``<!-- figures: none REASON -->`` marks a table whose numbers are not measurements (a
table of defaults, of exit codes). A table with a decimal number and no marker fails.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!--\s*figures:\s*(.+?)\s*-->\s*$")
# A number standing alone: not part of a name (fp32, int8, H100, sr2) or a version (1.2.3).
NUMBER = re.compile(r"(?<![\w.\-/])(-?\d+(?:\.\d+)?)(?![\w]|\.\d)")
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.])")
CONTEXT_LINES = 12  # how far above a marker the results file and its command must be named
COMMAND = re.compile(r"(python3? |\.venv/bin/python |edgegen |make )")


def pages(root: Path = ROOT) -> list[Path]:
    """README.md and the documentation's pages (docs/cli.md is --help, no figures)."""
    docs = sorted(p for p in (root / "docs").rglob("*.md") if p.name != "cli.md")
    return [root / "README.md", *docs]


@dataclass
class Block:
    page: Path
    line: int  # of the marker
    sources: list[str]  # results files, or [] for "none"
    text: list[str]  # the table's body rows, or the paragraph's lines
    above: str  # the lines above the marker


def blocks(page: Path) -> tuple[list[Block], list[int]]:
    """The marked blocks of ``page``, and the lines of tables with decimals that have no
    marker."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    unmarked: list[int] = []
    fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            fence = not fence
        marker = None if fence else MARKER.match(line.strip())
        if marker:
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            body: list[str] = []
            if j < len(lines) and lines[j].startswith("|"):
                rows = []
                while j < len(lines) and lines[j].startswith("|"):
                    rows.append(lines[j])
                    j += 1
                body = rows[2:]  # the header and its rule are names, not figures
            else:
                while j < len(lines) and lines[j].strip():
                    body.append(lines[j])
                    j += 1
            value = marker.group(1)
            sources = [] if value.startswith("none") else [s.strip() for s in value.split(",")]
            above = "\n".join(lines[max(0, i - CONTEXT_LINES) : i])
            found.append(Block(page, i + 1, sources, body, above))
            i = j
            continue
        if not fence and line.startswith("|---") and i >= 1:
            previous = next((s for s in reversed(lines[: i - 1]) if s.strip()), "")
            start = i + 1
            rows = []
            while start < len(lines) and lines[start].startswith("|"):
                rows.append(lines[start])
                start += 1
            if not MARKER.match(previous.strip()) and any(DECIMAL.search(r) for r in rows):
                unmarked.append(i)
        i += 1
    return found, unmarked


def json_numbers(value: Any) -> list[float]:
    """Every number in a JSON document, also those inside its strings ("28.63 dB")."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)] if math.isfinite(value) else []
    if isinstance(value, str):
        return [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in json_numbers(v)] + [
            n for k in value for n in json_numbers(k)
        ]
    if isinstance(value, list):
        return [n for v in value for n in json_numbers(v)]
    return []


def shown_as(number: float, text: str) -> bool:
    """Whether ``number`` rounds to ``text`` at the decimals ``text`` shows (either way at a
    tie: 0.125 may be shown as 0.12 or 0.13)."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    return abs(number - float(text)) <= 0.5 * 10**-decimals + 1e-9


def problems(block: Block, root: Path = ROOT) -> list[str]:
    where = f"{block.page.relative_to(root)}:{block.line}"
    if not block.sources:
        return []
    found: list[str] = []
    numbers: list[float] = []
    for source in block.sources:
        path = root / source
        if not source.startswith("benchmarks/results/") or not path.is_file():
            found.append(f"{where}: {source} is not a file under benchmarks/results/")
            continue
        if source not in block.above and Path(source).name not in block.above:
            found.append(f"{where}: the text above the figures does not name {source}")
        numbers += json_numbers(json.loads(path.read_text(encoding="utf-8")))
    if not COMMAND.search(block.above):
        found.append(f"{where}: the text above the figures names no command that made them")
    for row in block.text:
        for text in NUMBER.findall(row.replace("**", "")):
            if not any(shown_as(n, text) or shown_as(-n, text) for n in numbers):
                found.append(f"{where}: {text} is not in {', '.join(block.sources)} ({row[:60]})")
    return found


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_figure_is_in_its_results_file(page: Path) -> None:
    marked, unmarked = blocks(page)
    assert [p for b in marked for p in problems(b)] == []
    assert unmarked == [], f"{page.name}: tables with figures and no marker at lines {unmarked}"


def test_the_docs_hold_marked_figures() -> None:
    """The rule has something to hold: the results tables are marked."""
    sources = {s for page in pages() for b in blocks(page)[0] for s in b.sources}
    assert {"benchmarks/results/ecosystem.json", "benchmarks/results/cluster.json"} <= sources


def test_a_planted_wrong_number_fails(tmp_path: Path) -> None:
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    (results / "x.json").write_text(json.dumps({"rows": [{"ms": 3.111, "ratio": 0.714}]}))
    (tmp_path / "docs").mkdir()
    page = tmp_path / "README.md"
    good = (
        "Measured with `python benchmarks/x.py --json benchmarks/results/x.json`:\n\n"
        "<!-- figures: benchmarks/results/x.json -->\n"
        "| variant | ms | ratio |\n|---|---|---|\n| fp16 | 3.11 | 0.71× |\n"
    )
    page.write_text(good)
    marked, unmarked = blocks(page)
    assert unmarked == [] and [p for b in marked for p in problems(b, tmp_path)] == []
    page.write_text(good.replace("3.11", "3.01"))
    found = [p for b in blocks(page)[0] for p in problems(b, tmp_path)]
    assert len(found) == 1 and "3.01 is not in benchmarks/results/x.json" in found[0]
    page.write_text(good.replace("<!-- figures: benchmarks/results/x.json -->\n", ""))
    assert blocks(page)[1] != []  # a table of figures without its marker
    page.write_text(good.replace("`python benchmarks/x.py --json benchmarks/results/x.json`", "x"))
    found = [p for b in blocks(page)[0] for p in problems(b, tmp_path)]
    assert any("does not name" in p for p in found) and any("no command" in p for p in found)
