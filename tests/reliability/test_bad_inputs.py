"""Every case of the bad-input catalogue (badinputs.CASES), run as a user runs it: the real
``edgegen`` CLI in a subprocess (or the Python API in-process for ``Generator`` rows).

A refused input must give its exit code, exactly one stderr line that names the problem, no
traceback, and leave every file that was there byte-identical (no new file, no temporary left).
An accepted input must give the correct output (each case's check) and also leave earlier files
as they were.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from badinputs import CASES, DENOISE, PRIVILEGE_SENSITIVE, Case, Env
from clitools import run_edgegen
from tinymodels import exported, identity_onnx, tiny_checkpoint

from edgegen.runtime import EdgegenError


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("shared")
    models = root / "models"
    shutil.copytree(exported(("fp32",)), models)
    ckpt = tiny_checkpoint(root / "run")
    (root / "identity").mkdir()
    identity = identity_onnx(root / "identity" / "id.onnx", DENOISE)
    return models, ckpt, identity


def snapshot(*folders: Path) -> dict[str, str]:
    """Every file under ``folders`` -> sha256 of its bytes."""
    files: dict[str, str] = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                files[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def test_the_catalogue_holds_at_least_40_distinct_bad_inputs() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    refused = [case for case in CASES if case.code != 0]
    assert len(refused) >= 40, len(refused)
    assert {case.command for case in CASES} >= {
        "train", "export", "run", "verify", "compare", "bench", "Generator",
    }  # fmt: skip
    assert set(ids) >= PRIVILEGE_SENSITIVE, PRIVILEGE_SENSITIVE - set(ids)


def _marks(case: Case) -> list[pytest.MarkDecorator]:
    """Every row is `catalogue`; the rows the unprivileged rerun repeats are also `privileged`
    (test_limits selects them by these markers)."""
    marks = [pytest.mark.catalogue]
    return [*marks, pytest.mark.privileged] if case.id in PRIVILEGE_SENSITIVE else marks


@pytest.mark.parametrize(
    "case", [pytest.param(case, marks=_marks(case)) for case in CASES], ids=[c.id for c in CASES]
)
def test_bad_input(case: Case, tmp_path: Path, shared: tuple[Path, Path, Path]) -> None:
    models, ckpt, identity = shared
    env = Env(tmp_path / "case", models, ckpt, identity)
    env.tmp.mkdir()
    watched = (env.tmp, models, ckpt.parent, identity.parent)
    if case.api is not None:
        call = case.api(env)
        before = snapshot(*watched)
        _check_api(case, call)
    else:
        assert case.argv is not None
        argv = case.argv(env)
        before = snapshot(*watched)
        proc = run_edgegen(*argv, cwd=env.tmp, timeout=300)
        _check_cli(case, env, proc)
    after = snapshot(*watched)
    changed = {k for k in before if before[k] != after.get(k)}
    assert not changed, f"files changed or removed: {sorted(changed)}"
    new = sorted(set(after) - set(before))
    if case.code != 0:
        assert not new, f"a refused input left files: {new}"
    else:
        out = str(env.tmp / "out")
        assert all(name.startswith(out) for name in new), new
    assert not [name for name in new if name.endswith(".tmp")]
    if case.marker:
        assert not (env.tmp / case.marker).exists(), "the pickle was unpickled"


def _check_cli(case: Case, env: Env, proc) -> None:  # type: ignore[no-untyped-def]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == case.code, (proc.returncode, proc.stderr)
    if case.code == 2:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("edgegen: error:"), lines[0]
        for needle in case.needles:
            assert needle in lines[0], (needle, lines[0])
    if case.check is not None:
        case.check(env, proc)


def _check_api(case: Case, call: Callable[[], Any]) -> None:
    if case.code == 0:
        call()
        return
    with pytest.raises(EdgegenError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message, message
    for needle in case.needles:
        assert needle in message, (needle, message)
