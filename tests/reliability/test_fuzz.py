"""The seeded fuzz pass (fuzz.py) as a test: 1,000 mutated PNG, JPEG, ONNX, golden and manifest
files through ``edgegen run``/``verify`` and the Python API, with no traceback, no broken stderr
promise, no crash and no hang; and proof that the harness does report each of those, so that a
clean run means something.

Replay a failure with the seed and case id the message gives:
``python tests/reliability/fuzz.py --seed SEED --case ID``.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fuzz import KINDS, Seeds, build_case, build_seeds, run_fuzz

SEED = 20250611  # fixed: a failure here replays with the same files
COUNT = 1000


@pytest.mark.slow
def test_a_thousand_mutated_files_are_refused_cleanly() -> None:
    print(f"edgegen fuzz: seed {SEED}, {COUNT} cases")
    report = run_fuzz(SEED, COUNT)
    print(report.summary())
    assert len(report.cases) >= COUNT
    kinds = Counter(case.kind for case in report.cases)
    assert set(kinds) == set(KINDS), kinds
    outcomes = Counter(case.outcome for case in report.cases)
    # A pass that refuses (or accepts) everything is not exercising the other half.
    assert outcomes["refused"] > COUNT // 4 and outcomes["accepted"] > COUNT // 20, outcomes
    # onnxruntime's own log lines would break the one-line promise: sessions log only fatal
    # errors, and the CLI silences its start-up warning.
    assert report.ort_log_lines() == 0, report.ort_log_examples()
    assert not report.failures, (
        f"{len(report.failures)} of {len(report.cases)} fuzz cases failed "
        f"({dict(outcomes)}); replay one with `{report.replay} --case ID`\n"
        + report.summary(limit=15)
    )


# -- the harness can fail ---------------------------------------------------------------------
# Stand-ins for the CLI's main, loaded by the worker as "test_fuzz:<name>".


def raising_main(argv: list[str]) -> Any:
    """A CLI that lets a bug out as a traceback."""
    raise ValueError(f"deliberately broken main ({argv[0]})")


def two_line_main(argv: list[str]) -> Any:
    """A CLI that refuses with exit 2 but says so in two lines."""
    import sys

    print("edgegen: error: first line", file=sys.stderr)
    print("and a second one", file=sys.stderr)
    raise SystemExit(2)


def sleeping_main(argv: list[str]) -> Any:
    """A CLI that never finishes (a model that makes onnxruntime loop)."""
    time.sleep(600)


def crashing_main(argv: list[str]) -> Any:
    """A CLI that dies as a segfault in C++ code would."""
    os.kill(os.getpid(), signal.SIGSEGV)


def test_the_harness_reports_a_traceback_and_a_broken_stderr_promise() -> None:
    report = run_fuzz(SEED, 2, kinds=["json"], entry="test_fuzz:raising_main")
    assert [case.outcome for case in report.cases] == ["failure", "failure"]
    signatures = report.distinct()
    assert any("ValueError" in sig for sig in signatures), signatures
    assert "deliberately broken main" in report.summary()

    report = run_fuzz(SEED, 1, kinds=["png"], entry="test_fuzz:two_line_main")
    (case,) = report.cases
    bad = [call for call in case.calls if call["outcome"] == "failure"]
    assert bad and "exit 2 with 2 stderr line(s)" in bad[0]["reason"], case


def test_the_harness_reports_a_hang_and_goes_on_with_a_new_worker() -> None:
    started = time.perf_counter()
    report = run_fuzz(SEED, 2, kinds=["json"], entry="test_fuzz:sleeping_main", timeout=2)
    assert [case.outcome for case in report.cases] == ["hang", "hang"]
    assert report.worker_starts == 2  # the second case ran on a fresh worker
    case = report.cases[0]
    assert case.entry == "run" and "no result within 2 s in edgegen run" in case.detail, case
    assert time.perf_counter() - started < 60


def test_the_harness_reports_a_crash_with_its_case() -> None:
    report = run_fuzz(SEED, 2, kinds=["npz"], entry="test_fuzz:crashing_main")
    assert [case.outcome for case in report.cases] == ["crash", "crash"]
    assert report.worker_starts == 2
    case = report.cases[0]
    assert "SIGSEGV" in case.detail and case.mutation not in ("", "?"), case
    assert f"--case {case.id}" in report.summary()


def test_a_case_is_rebuilt_byte_for_byte_from_its_seed_and_id(tmp_path: Path) -> None:
    """Replaying one case (--case ID) must give the very files the full run used."""
    seeds = Seeds.load(build_seeds(tmp_path / "seeds"))
    for case_id in range(10):  # one cycle's start: every kind
        made = []
        for attempt in ("a", "b"):
            folder = tmp_path / f"{attempt}{case_id}"
            folder.mkdir()
            built = build_case(seeds, SEED, case_id, folder)
            files = {
                str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()
            }
            made.append((built.mutation, files))
        assert made[0] == made[1], case_id
