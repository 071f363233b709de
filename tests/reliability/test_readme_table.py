"""README's Reliability table and the tested catalogue cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

from badinputs import CASES

README = Path(__file__).resolve().parents[2] / "README.md"


def reliability_rows() -> dict[str, list[str]]:
    """README's ``## Reliability`` section: table rows keyed by their first cell's `id`."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Reliability\n(.*?)(?=^## )", text, flags=re.S | re.M)
    assert match, "README has no '## Reliability' section followed by another section"
    rows = {}
    for line in match.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and cells:
            rows[cells[0].strip("`")] = cells
    return rows


def test_every_tested_case_is_in_the_readme_with_its_exit_code() -> None:
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


def test_the_reliability_section_comes_just_before_the_model_spec() -> None:
    text = README.read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings[headings.index("Reliability") + 1] == "The model spec"
