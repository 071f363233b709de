"""scripts/check_readme.py: every command in README.md and the guide's pages runs as written.

The checker itself is tested on small READMEs made here (markers, order, failures, the scratch
copy); then it runs the real README with tiny training settings.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from clitools import child_env

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_readme.py"


def _check(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True, text=True, timeout=timeout, env=child_env(), cwd=ROOT,
    )  # fmt: skip


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_readme", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_readme"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


FENCE = "```"
SAMPLE = f"""# A project

Some text.

{FENCE}sh
echo first > order.txt   # a comment after the command
test -f pyproject.toml && test -f noisy.jpg && test -f photo.jpg && test -d photos
echo second \\
  >> order.txt
{FENCE}

{FENCE}text
this is output, never run
exit 3
{FENCE}

{FENCE}python
from pathlib import Path

assert Path("order.txt").read_text().split() == ["first", "second"]
Path("from_python.txt").write_text("ok")
{FENCE}

<!-- readme-check: exit 1 -->
{FENCE}bash
test -f missing-file
{FENCE}

<!-- readme-check: skip installs into the environment -->
{FENCE}sh
exit 9
{FENCE}

<!-- readme-check: slow -->
{FENCE}sh
test -f from_python.txt
{FENCE}

<!-- readme-check: needs no_such_module_here -->
{FENCE}python
raise SystemExit(7)
{FENCE}
"""


def test_a_readme_runs_in_order_in_a_scratch_copy(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(SAMPLE, encoding="utf-8")
    proc = _check("--readme", str(readme))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    status = [line.split()[0] for line in lines if re.match(r"^(ok|FAIL|SKIP) ", line)]
    assert status == ["ok", "ok", "ok", "ok", "ok", "SKIP", "ok", "SKIP"], proc.stdout
    assert "(installs into the environment)" in proc.stdout
    assert "(needs no_such_module_here, not installed)" in proc.stdout
    assert lines[-1] == "readme check: 6 ran, 0 failed, 2 skipped"
    assert not (ROOT / "order.txt").exists() and not (ROOT / "from_python.txt").exists()


def test_tiny_mode_leaves_slow_blocks_out(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(SAMPLE, encoding="utf-8")
    proc = _check("--readme", str(readme), "--tiny")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "slow: runs without --tiny" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "readme check: 5 ran, 0 failed, 3 skipped"


def test_a_failing_command_is_named_with_its_output(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        f"{FENCE}sh\necho fine\nedgegen no-such-command\necho after\n{FENCE}\n", encoding="utf-8"
    )
    proc = _check("--readme", str(readme))
    assert proc.returncode == 1
    assert re.search(r"^FAIL rc=2 +line +3  edgegen no-such-command", proc.stdout, re.M)
    assert "No such command" in proc.stdout  # the command's own output, shown under it
    assert proc.stdout.splitlines()[-1] == "readme check: 3 ran, 1 failed, 0 skipped"


def test_a_command_over_the_timeout_fails(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"{FENCE}sh\nsleep 30 & sleep 30\n{FENCE}\n", encoding="utf-8")
    proc = _check("--readme", str(readme), "--timeout", "1")
    assert proc.returncode == 1
    assert re.search(r"^FAIL rc=124 +line +2  sleep 30 & sleep 30", proc.stdout, re.M)
    assert "(timed out after 1 s)" in proc.stdout


@pytest.mark.parametrize("marker", ["exit one", "needs"])
def test_a_malformed_marker_is_exit_2(tmp_path: Path, marker: str) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"<!-- readme-check: {marker} -->\n{FENCE}sh\ntrue\n{FENCE}\n", "utf-8")
    proc = _check("--readme", str(readme))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"check_readme: error: {readme}: line 1: readme-check:")
    assert "Traceback" not in proc.stderr


def test_a_missing_readme_is_exit_2(tmp_path: Path) -> None:
    proc = _check("--readme", str(tmp_path / "nope.md"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"check_readme: error: {tmp_path / 'nope.md'}: no such file"


def test_tiny_rewrites_only_long_running_commands() -> None:
    tiny = _module().tiny
    assert tiny("edgegen run m.onnx a.jpg -o out/") == "edgegen run m.onnx a.jpg -o out/"
    assert tiny("edgegen train --resume runs/dn") == "edgegen train --resume runs/dn"
    rewritten = tiny("edgegen train --task sr --minutes 30 --steps=9 --out runs/sr2  # comment")
    assert rewritten.startswith("edgegen train --task sr --out runs/sr2 --arch tiny ")
    assert "--minutes" not in rewritten and "--steps=9" not in rewritten
    ddp = tiny("torchrun --nproc-per-node 2 -m edgegen.cli train --out runs/ddp")
    assert ddp.startswith("torchrun --nproc-per-node 2 -m edgegen.cli train --out runs/ddp")
    assert ddp.endswith("--steps 4 --val-every 4 --no-progress")
    demo = tiny("edgegen pipeline --preset denoise-small --steps 300 --out runs/demo")
    assert demo.startswith("edgegen pipeline --preset denoise-small --out runs/demo --steps 4 ")
    bench = tiny("edgegen bench export/dn --rounds 9 --sizes 256 --json b.json   # optional")
    assert bench == "edgegen bench export/dn --sizes 256 --json b.json --rounds 1"
    qat = tiny("edgegen export runs/dn --out e --precision int8 --qat 300   # after QAT")
    assert qat == "edgegen export runs/dn --out e --precision int8 --qat 4"
    assert tiny("edgegen train --qat-from runs/dn --steps=300 --out q") == (
        "edgegen train --qat-from runs/dn --steps=4 --out q"
    )


def test_every_block_of_the_real_readme_runs_or_says_why_not() -> None:
    proc = _check("--list", "--tiny")
    assert proc.returncode == 0, proc.stderr
    plan = proc.stdout.splitlines()
    assert sum(line.startswith("run ") for line in plan) >= 15
    # The guide's pages run after the README, in the site's order.
    pages = [line.split()[1].split(":")[0] for line in plan if "docs/" in line.split()[1]]
    assert pages and pages[0] == "docs/guide/training.md"
    assert {"docs/guide/export.md", "docs/guide/runtime.md", "docs/guide/scaling.md"} <= set(pages)
    for line in plan:
        assert line.startswith("run ") or re.search(r"\(.+\)$", line), line
        if line.startswith("run ") and re.search(r"edgegen(\.runtime\.cli)? train ", line):
            assert "--resume" in line or "--arch tiny" in line or "--steps 4" in line, line


@pytest.mark.slow
def test_the_readme_commands_run() -> None:
    proc = _check("--tiny", timeout=1500)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr
