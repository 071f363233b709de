"""The documentation's reliability table and the tested catalogue cannot drift apart."""

from __future__ import annotations

from pathlib import Path

from badinputs import CASES

PAGE = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"


def reliability_rows() -> dict[str, list[str]]:
    """docs/reliability.md's table rows keyed by their first cell's `id`."""
    rows = {}
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and cells:
            rows[cells[0].strip("`")] = cells
    return rows


def test_every_tested_case_is_in_the_reliability_page_with_its_exit_code() -> None:
    rows = reliability_rows()
    missing = [case.id for case in CASES if case.id not in rows]
    assert missing == []
    for case in CASES:
        code = rows[case.id][-1]
        want = "EdgegenError" if case.api is not None and case.code else str(case.code)
        if case.api is not None and not case.code:
            want = "—"
        assert code == want, (case.id, code, want)
        assert rows[case.id][1] == case.command, case.id
