"""docs/cli.md: generated from --help, and a test that fails when it is stale."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from clitools import child_env, edgegen_cmd

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_cli_reference.py"
REFERENCE = ROOT / "docs" / "cli.md"


def _script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True, text=True, timeout=300, env=child_env(), cwd=ROOT,
    )  # fmt: skip


def _sections() -> dict[str, str]:
    """Each '## edgegen X' heading of docs/cli.md -> the help text in its code block."""
    text = REFERENCE.read_text(encoding="utf-8")
    found = re.findall(r"^## (edgegen(?: \w+)?)\n\n```text\n(.*?)\n```$", text, re.S | re.M)
    return dict(found)


def test_the_committed_reference_is_up_to_date() -> None:
    proc = _script("--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_it_lists_every_command() -> None:
    listed = subprocess.run(
        edgegen_cmd("--help"), capture_output=True, text=True, env=child_env(), timeout=120
    ).stdout
    names = re.findall(r"^  (\w+) ", listed.split("Commands:", 1)[1], re.M)
    assert len(names) >= 6 and "train" in names
    assert sorted(_sections()) == sorted(["edgegen", *(f"edgegen {n}" for n in names)])


@pytest.mark.parametrize("heading", ["edgegen", "edgegen run", "edgegen export"])
def test_a_section_is_what_the_command_prints(heading: str) -> None:
    """Independent of the generator: the real --help in an 80-column terminal (a subprocess:
    click's test runner forces its own width)."""
    env = {**child_env(), "COLUMNS": "80"}
    real = subprocess.run(
        edgegen_cmd(*heading.split()[1:], "--help"),
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert real.returncode == 0, real.stderr
    assert _sections()[heading] == real.stdout.rstrip("\n")


def test_a_stale_reference_fails_the_check_and_is_rewritten(tmp_path: Path) -> None:
    stale = tmp_path / "cli.md"
    text = REFERENCE.read_text(encoding="utf-8")
    assert "--precision TEXT" in text
    stale.write_text(text.replace("--precision TEXT", "--precision-old TEXT"), encoding="utf-8")
    before = stale.read_text(encoding="utf-8")

    proc = _script("--check", "--out", str(stale))
    assert proc.returncode == 1
    assert "stale" in proc.stdout and "--precision-old TEXT" in proc.stdout
    assert stale.read_text(encoding="utf-8") == before  # --check never writes

    proc = _script("--out", str(stale))
    assert proc.returncode == 0, proc.stderr
    rewritten = stale.read_text(encoding="utf-8")
    assert "--precision TEXT" in rewritten and "--precision-old" not in rewritten
    assert _script("--check", "--out", str(stale)).returncode == 0
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


@pytest.mark.parametrize("missing", [True, False])
def test_a_missing_reference_is_stale(tmp_path: Path, missing: bool) -> None:
    out = tmp_path / "docs" / "cli.md"
    if not missing:
        out.parent.mkdir()
        out.write_text("", encoding="utf-8")
    assert _script("--check", "--out", str(out)).returncode == 1
    assert out.exists() is not missing
