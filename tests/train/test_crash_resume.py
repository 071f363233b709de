"""Crash safety of training runs: SIGKILL at any moment, resume, and end where an uninterrupted
run ends; a run folder is never overwritten and a resumed run never changes its recorded maths."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from clitools import assert_one_line_error, child_env, edgegen_cmd, run_edgegen

from edgegen.runtime.errors import EdgegenError
from edgegen.train import trainer as trainer_module
from edgegen.train.checkpoint import load_checkpoint
from edgegen.train.config import TrainConfig
from edgegen.train.trainer import train

CHECKPOINT_FILES = ("best.json", "best.safetensors", "last.json", "last.safetensors")

# The SIGKILL test: total steps, validation/checkpoint interval, and how many kills.
KILL_STEPS = 100
KILL_VAL_EVERY = 5
KILLS = 3
PHASE_TIMEOUT = 240.0  # seconds; generous, the machine may be shared with CPU-heavy jobs


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return run_edgegen(*args, timeout=timeout)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.005)


def temp_leftovers(run: Path) -> list[str]:
    """Hidden ``.tmp`` files in the run folder: atomic_write's own (``.NAME.edgegen-XXXXXXXX.tmp``)
    and any a user put there."""
    return sorted(
        p.name for p in run.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")
    )


def snapshot(run: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.iterdir())}


def metric_steps(run: Path) -> list[int]:
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["step"] for line in lines if line.strip()]


def tiny_config(out: Path, steps: int, val_every: int) -> TrainConfig:
    return TrainConfig(
        arch="tiny", patch=32, batch=4, workers=0, steps=steps, val_every=val_every, out=str(out)
    )


class SimulatedCrash(Exception):
    """Raised inside training to stop it at a chosen point, as a crash would."""


def crash_after_step(step: int) -> Callable[[str], None]:
    """A ``log`` for :func:`train` that crashes once the report line of ``step`` is logged, i.e.
    right after that step's checkpoint has been written completely."""

    def log(message: str) -> None:
        if message.startswith(f"step {step}/"):
            raise SimulatedCrash(message)

    return log


def quiet(_message: str) -> None:
    pass


class CheckpointWatcher(threading.Thread):
    """Polls ``RUN/last.safetensors`` every few milliseconds. Whenever the file under that name
    changes (inode, size or mtime), a copy of it must load as a complete checkpoint. The copy is
    taken so that an os.replace during the load cannot matter: an open file keeps its inode."""

    def __init__(self, run: Path, scratch: Path) -> None:
        super().__init__(daemon=True)
        self.run_dir = run
        self.scratch = scratch
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.stop_event = threading.Event()
        self.problems: list[str] = []
        self.steps: list[int] = []  # the step of each distinct version loaded, in order
        self._lock = threading.Lock()
        self._seen = False
        self._signature: tuple[int, int, int] | None = None

    @property
    def latest_step(self) -> int:
        with self._lock:
            return self.steps[-1] if self.steps else -1

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.poll()
            time.sleep(0.002)
        self.poll()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=30)

    def poll(self) -> None:
        path = self.run_dir / "last.safetensors"
        try:
            st = path.stat()
        except FileNotFoundError:
            if self._seen:
                self._problem("last.safetensors disappeared after it had existed")
            return
        self._seen = True
        signature = (st.st_ino, st.st_size, st.st_mtime_ns)
        if signature == self._signature:
            return
        self._signature = signature
        copy = self.scratch / "last.safetensors"
        try:
            shutil.copyfile(path, copy)
        except FileNotFoundError:
            self._problem("last.safetensors disappeared while being copied")
            return
        try:
            ckpt = load_checkpoint(self.scratch, prefer="last")
            step = ckpt.step
            # The optimizer holds no state before its first step.
            complete = bool(ckpt.weights) and (step == 0 or bool(ckpt.optimizer_tensors))
            del ckpt
        except EdgegenError as exc:
            self._problem(f"half-written last.safetensors ({st.st_size} bytes): {exc}")
            return
        if not complete:
            self._problem(f"last.safetensors at step {step} lacks weights or optimizer state")
        with self._lock:
            if self.steps and step < self.steps[-1]:
                self.problems.append(f"last.safetensors went back from {self.steps[-1]} to {step}")
            self.steps.append(step)

    def _problem(self, message: str) -> None:
        with self._lock:
            self.problems.append(message)


def start_training(args: list[str], logs: Path, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    stderr_path = logs / f"{name}.stderr"
    with open(logs / f"{name}.stdout", "wb") as out, open(stderr_path, "wb") as err:
        proc = subprocess.Popen(edgegen_cmd(*args), stdout=out, stderr=err, env=child_env())
    return proc, stderr_path


def test_sigkill_and_resume(tmp_path: Path) -> None:
    run = tmp_path / "RUN"
    logs = tmp_path / "logs"
    logs.mkdir()
    rng = random.Random(20240611)
    watcher = CheckpointWatcher(run, tmp_path / "watcher")
    watcher.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        first = [
            "train", "--arch", "tiny", "--steps", str(KILL_STEPS),
            "--val-every", str(KILL_VAL_EVERY), "--patch", "32", "--batch", "4",
            "--workers", "0", "--no-progress", "--out", str(run),
        ]  # fmt: skip
        resume = ["train", "--resume", str(run), "--workers", "0", "--no-progress"]

        killed_at: list[int] = []
        target = rng.randrange(5, 30, KILL_VAL_EVERY)
        for attempt in range(KILLS):
            proc, stderr_path = start_training(
                first if attempt == 0 else resume, logs, f"r{attempt}"
            )
            procs.append(proc)

            def reached(proc: subprocess.Popen[bytes] = proc, target: int = target) -> bool:
                return watcher.latest_step >= target or proc.poll() is not None

            wait_for(reached, PHASE_TIMEOUT, f"a checkpoint at step >= {target} (run {attempt})")
            time.sleep(rng.uniform(0.0, 0.25))  # a pseudo-random moment after that checkpoint
            assert proc.poll() is None, (
                f"run {attempt} ended (rc {proc.returncode}) before it could be killed:\n"
                + stderr_path.read_text(errors="replace")
            )
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=60) == -signal.SIGKILL
            step = load_checkpoint(run, prefer="last").step
            assert step < KILL_STEPS, "the run finished before the kill; raise KILL_STEPS"
            killed_at.append(step)
            target = max(step, target) + rng.randrange(10, 25, KILL_VAL_EVERY)

        proc, stderr_path = start_training(resume, logs, "final")
        procs.append(proc)
        rc = proc.wait(timeout=PHASE_TIMEOUT)
        assert rc == 0, stderr_path.read_text(errors="replace")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        watcher.stop()

    assert not watcher.problems, watcher.problems
    assert watcher.steps, "the watcher never saw last.safetensors"
    assert watcher.steps[-1] == KILL_STEPS
    assert killed_at == sorted(killed_at) and len(killed_at) == KILLS
    assert load_checkpoint(run, prefer="last").step == KILL_STEPS
    assert json.loads((run / "last.json").read_text())["step"] == KILL_STEPS
    assert temp_leftovers(run) == [], "temporary files left behind by the killed runs"
    steps = metric_steps(run)
    assert steps == sorted(set(steps)), f"metrics.jsonl steps not strictly increasing: {steps}"
    assert steps == list(range(0, KILL_STEPS + 1, KILL_VAL_EVERY))
    summary = (logs / "final.stdout").read_text()
    assert f"step {KILL_STEPS}/{KILL_STEPS}" in summary


def test_resume_matches_uninterrupted(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    train(tiny_config(a, steps=20, val_every=10), progress=False, log=quiet)

    with pytest.raises(SimulatedCrash):
        train(tiny_config(b, steps=20, val_every=10), progress=False, log=crash_after_step(10))
    assert load_checkpoint(b, prefer="last").step == 10
    result = train(TrainConfig(workers=0), resume=str(b), progress=False, log=quiet)
    assert result.step == 20

    ca, cb = load_checkpoint(a, prefer="last"), load_checkpoint(b, prefer="last")
    assert ca.step == cb.step == 20
    assert ca.weights.keys() == cb.weights.keys()
    for name in ca.weights:
        assert torch.equal(ca.weights[name], cb.weights[name]), f"weight {name} differs"
    assert ca.optimizer_tensors.keys() == cb.optimizer_tensors.keys()
    for name in ca.optimizer_tensors:
        assert torch.equal(ca.optimizer_tensors[name], cb.optimizer_tensors[name]), name
    assert ca.record["scheduler"] == cb.record["scheduler"]
    assert ca.record["metrics"]["psnr"] == cb.record["metrics"]["psnr"]
    assert metric_steps(a) == metric_steps(b) == [0, 10, 20]


def test_resume_removes_temp_files_of_a_killed_write(tmp_path: Path) -> None:
    """A SIGKILL during checkpoint.atomic_write leaves its ``.NAME.XXXX.tmp`` behind (the
    clean-up in its ``except`` never runs); a resumed run must not keep that litter forever."""
    run = tmp_path / "RUN"
    with pytest.raises(SimulatedCrash):
        train(tiny_config(run, steps=10, val_every=5), progress=False, log=crash_after_step(5))
    data = (run / "last.safetensors").read_bytes()
    planted = [
        ".last.safetensors.edgegen-k1ll3d00.tmp",
        ".last.json.edgegen-k1ll3d00.tmp",
        ".metrics.jsonl.edgegen-k1ll3d00.tmp",
    ]
    (run / planted[0]).write_bytes(data[: len(data) // 2])  # a write cut off half-way
    (run / planted[1]).write_bytes(b"")
    (run / planted[2]).write_bytes(b'{"step": 0}\n')
    users = [".notes.tmp", ".draft.k1ll3d00.tmp"]  # a user's own hidden temporaries
    for name in users:
        (run / name).write_text("mine")
    assert temp_leftovers(run) == sorted(planted + users)

    result = train(TrainConfig(workers=0), resume=str(run), progress=False, log=quiet)
    assert result.step == 10
    assert load_checkpoint(run, prefer="last").step == 10
    assert temp_leftovers(run) == sorted(users)  # only edgegen's own were removed
    assert all((run / name).read_text() == "mine" for name in users)


def test_best_checkpoint_matches_record_after_crash_between_saves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after last.* records a new best but before best.* is written must not leave
    best.safetensors older than the best that last.json (and the resumed run) believe in."""
    run = tmp_path / "RUN"
    real_save = trainer_module.save_checkpoint
    crashed: list[int] = []

    def save_then_crash(
        run_dir: Path, name: str, record: dict[str, Any], *args: Any, **kwargs: Any
    ) -> Path:
        if name == "best" and record["step"] == 10:
            crashed.append(record["step"])
            raise SimulatedCrash("killed between last.safetensors and best.safetensors")
        return real_save(run_dir, name, record, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "save_checkpoint", save_then_crash)
    with pytest.raises(SimulatedCrash):
        train(tiny_config(run, steps=10, val_every=5), progress=False, log=quiet)
    assert crashed == [10], "step 10 did not improve PSNR, so this test exercised nothing"
    monkeypatch.setattr(trainer_module, "save_checkpoint", real_save)

    train(TrainConfig(workers=0), resume=str(run), progress=False, log=quiet)
    last = load_checkpoint(run, prefer="last")
    best = load_checkpoint(run, prefer="best")
    assert last.step == 10
    assert best.step == last.record["best"]["step"], (
        f"last.json says the best is step {last.record['best']['step']}, "
        f"best.safetensors holds step {best.step}"
    )
    assert json.loads((run / "best.json").read_text())["step"] == best.step


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("finished") / "RUN"
    train(tiny_config(run, steps=4, val_every=2), progress=False, log=quiet)
    assert sorted(p.name for p in run.iterdir()) == sorted((*CHECKPOINT_FILES, "metrics.jsonl"))
    return run


def test_existing_run_is_not_overwritten(finished_run: Path) -> None:
    before = snapshot(finished_run)
    proc = run_cli(
        "train", "--arch", "tiny", "--steps", "4", "--val-every", "2", "--patch", "32",
        "--batch", "4", "--workers", "0", "--no-progress", "--out", str(finished_run),
    )  # fmt: skip
    assert_one_line_error(proc, "--resume")
    assert proc.stdout == ""
    assert snapshot(finished_run) == before


def test_resume_refuses_changed_options(finished_run: Path) -> None:
    before = snapshot(finished_run)
    proc = run_cli("train", "--resume", str(finished_run), "--lr", "0.1", "--no-progress")
    assert_one_line_error(proc, "--lr")
    assert proc.stdout == ""
    assert snapshot(finished_run) == before
