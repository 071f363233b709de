"""Shared helpers: running the real `edgegen` CLI in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Environment variables that would make a child think it runs under torchrun.
DIST_VARS = frozenset(
    {
        "WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
        "GROUP_RANK", "ROLE_RANK", "TORCHELASTIC_RUN_ID",
    }
)  # fmt: skip

# The fastest real training: the tiny arch, small patches and batches, no worker processes.
TINY = ("--arch", "tiny", "--patch", "32", "--batch", "2", "--workers", "0", "--no-progress")


def edgegen_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgegen.cli", *args]


def child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in DIST_VARS}


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit code 2, exactly one line on stderr that contains every needle, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("edgegen: error:"), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]


def run_edgegen(
    *args: str, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        edgegen_cmd(*args), capture_output=True, text=True, cwd=cwd, timeout=timeout,
        env=child_env(),
    )  # fmt: skip


def load_script(path: Path) -> object:
    """A script under scripts/ (not a package module) imported as a module named after its file,
    registered in sys.modules so that its dataclasses resolve their own module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module
