"""The design page's layout table is the tree: every package's row names each of its modules and
subfolders, and every file a row names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `([a-z]+)/` \| (.*)$", re.MULTILINE)
NAMED = re.compile(r"`([\w./-]+?\.py|[\w-]+/)`")
PACKAGES = (
    "runtime", "cluster", "runners", "evaluation", "train", "export", "pipeline", "cli", "models"
)  # fmt: skip


def layout_rows() -> dict[str, str]:
    design = (ROOT / "docs" / "design.md").read_text()
    return {folder: rest for folder, rest in ROW.findall(design)}


def test_every_package_has_a_row():
    assert set(PACKAGES) <= set(layout_rows())


def test_each_row_names_every_module_of_its_package():
    rows = layout_rows()
    for package in PACKAGES:
        folder = ROOT / package
        named = set(NAMED.findall(rows[package]))
        for path in folder.iterdir():
            if path.suffix == ".py" and path.name not in {"__init__.py", "__main__.py"}:
                assert path.name in named, f"design.md's {package}/ row does not name {path.name}"
            elif path.is_dir() and not path.name.startswith(("_", ".")):
                assert f"{path.name}/" in named, (
                    f"docs/design.md's {package}/ row does not name {path.name}/"
                )


def test_every_file_a_row_names_exists():
    for folder, row in layout_rows().items():
        for name in NAMED.findall(row):
            assert (ROOT / folder / name).exists(), f"docs/design.md names {folder}/{name}"
