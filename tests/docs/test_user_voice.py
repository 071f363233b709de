"""The README, the documentation and the model cards speak of the product to its users: never of
the project's own work items ("the issue", "issue 6") or of files a clone does not have."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = re.compile(
    r"\bthe issue\b|\bissues? #?\d+|\bfor the issue\b|\bwork items?\b|\.\./shared\b"
    r"|(?-i:\bDESIGN\.md\b)",
    re.IGNORECASE,
)


def user_pages(root: Path = ROOT) -> list[Path]:
    return [
        root / "README.md",
        *sorted((root / "docs").rglob("*.md")),
        *sorted((root / "models").glob("*/README.md")),
    ]


def offences(page: Path) -> list[str]:
    found = []
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        for match in FORBIDDEN.finditer(line):
            found.append(f"{page.name}:{number}: {match.group(0)!r} in {line.strip()[:80]}")
    return found


def test_no_page_speaks_of_work_items_or_missing_files() -> None:
    pages = user_pages()
    assert len(pages) > 10
    assert [o for page in pages for o in offences(page)] == []


def test_the_check_finds_a_planted_sentence(tmp_path: Path) -> None:
    page = tmp_path / "README.md"
    page.write_text("Fast.\n\nMeasured for the issue, see ../shared/DESIGN.md and issue 6.\n")
    found = offences(page)
    assert len(found) == 4 and all(f.startswith("README.md:3:") for f in found)
