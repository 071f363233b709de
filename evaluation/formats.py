"""One writer for every report as text: a table, Markdown or JSON.

A report (``CompareResult``, ``LayersResult``) gives its rows as records, the columns to show
(:data:`Column`: header, record key, format), the columns to align left, a list of summary
lines and a JSON-ready ``to_dict()``; :func:`render` turns it into any of :data:`FORMATS`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

FORMATS = ("table", "json", "markdown")
Column = tuple[str, str, str]  # header, record key, format spec


class Report(Protocol):
    COLUMNS: ClassVar[tuple[Column, ...]]
    LEFT: ClassVar[frozenset[int]]  # column indices aligned left in the table

    def records(self) -> list[Mapping[str, Any]]: ...

    def summary(self) -> list[str]: ...

    def to_dict(self) -> dict[str, Any]: ...


def cells(columns: Sequence[Column], records: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """The header, then one row of strings per record ("-" for a missing value)."""
    rows = [[header for header, _, _ in columns]]
    for record in records:
        rows.append(
            [
                "-" if record.get(key) is None else format(record[key], fmt)
                for _, key, fmt in columns
            ]
        )
    return rows


def text_table(rows: Sequence[Sequence[str]], left: frozenset[int] = frozenset()) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        parts = [
            c.ljust(w) if k in left else c.rjust(w)
            for k, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
    return lines


def markdown_table(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> list[str]:
    # A column without a header in the table is named by its key here: Markdown needs one.
    header = [h or key for h, key, _ in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows[1:]]
    return lines


def render(report: Report, fmt: str) -> str:
    """``report`` as ``fmt``: ``table`` (aligned columns, then the summary lines), ``markdown``
    (a table, then the summary as a list) or ``json`` (``to_dict()``, no NaN)."""
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2, allow_nan=False)
    rows = cells(report.COLUMNS, report.records())
    if fmt == "markdown":
        lines = markdown_table(report.COLUMNS, rows)
        return "\n".join([*lines, "", *(f"- {line}" for line in report.summary())])
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}")
    return "\n".join([*text_table(rows, report.LEFT), *report.summary()])
