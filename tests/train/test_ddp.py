"""DDP on CPU: ``torchrun --nproc-per-node 2`` trains one run, rank 0 alone writes it, and the
two ranks together take exactly the optimizer steps one process takes with the whole batch."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from clitools import child_env

from edgegen.train.checkpoint import load_checkpoint
from edgegen.train.config import TrainConfig
from edgegen.train.trainer import train

TORCHRUN = Path(sys.executable).parent / "torchrun"
STEPS = 10
BATCH = 8
TIME_LIMIT = 120  # seconds for the whole torchrun
DONE = re.compile(r"^done: .*$", re.MULTILINE)


@dataclass
class DdpRun:
    run: Path
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> DdpRun:
    if not TORCHRUN.exists():
        pytest.skip(f"{TORCHRUN} is not installed")
    run = tmp_path_factory.mktemp("ddp") / "RUN"
    cmd = [
        str(TORCHRUN), "--standalone", "--nproc-per-node", "2",
        "-m", "edgegen.cli", "train",
        "--arch", "tiny", "--steps", str(STEPS), "--val-every", str(STEPS), "--patch", "32",
        "--batch", str(BATCH), "--workers", "0", "--device", "cpu", "--no-progress",
        "--out", str(run),
    ]  # fmt: skip
    env = child_env()
    # A session of its own, so that a hung run can be ended with its rank processes.
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=TIME_LIMIT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"torchrun did not finish in {TIME_LIMIT}s:\n{stdout}\n{stderr}")
    return DdpRun(run, proc.returncode, stdout, stderr)


def test_ddp_trains_and_rank0_alone_writes(ddp_run: DdpRun) -> None:
    assert ddp_run.returncode == 0, ddp_run.output
    run = ddp_run.run
    assert sorted(p.name for p in run.iterdir()) == [
        "best.json",
        "best.safetensors",
        "last.json",
        "last.safetensors",
        "metrics.jsonl",
    ]
    last = load_checkpoint(run, prefer="last")
    assert last.step == STEPS
    assert last.record["total_steps"] == STEPS
    assert json.loads((run / "last.json").read_text())["step"] == STEPS
    assert load_checkpoint(run, prefer="best").step == last.record["best"]["step"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [0, STEPS]
    # Validation is reported once (rank 0), not once per rank.
    assert len(re.findall(rf"^step {STEPS}/{STEPS} ", ddp_run.stderr, re.MULTILINE)) == 1, (
        ddp_run.output
    )
    done = DONE.findall(ddp_run.stdout)
    assert len(done) == 1, ddp_run.output  # rank 0 speaks for the run
    assert any(f"step {STEPS}/{STEPS}" in line for line in done), ddp_run.output


def test_ddp_summary_lines_are_true(ddp_run: DdpRun) -> None:
    """Every 'done:' line printed (rank 0 alone prints it) reports the run's real result,
    not the empty metrics of a rank that never validated."""
    assert ddp_run.returncode == 0, ddp_run.output
    best = load_checkpoint(ddp_run.run, prefer="last").record["best"]
    expected = f"best {best['psnr']:.2f} dB at step {best['step']}"
    for line in DONE.findall(ddp_run.stdout):
        assert "nan" not in line and "-inf" not in line, line
        assert expected in line, line


def test_ddp_matches_one_process_with_the_whole_batch(ddp_run: DdpRun, tmp_path: Path) -> None:
    """Each rank draws its own half of every global batch and DDP averages the gradients, so
    2 ranks x 4 samples must train the same weights as 1 process x 8 samples."""
    assert ddp_run.returncode == 0, ddp_run.output
    single = tmp_path / "single"
    cfg = TrainConfig(
        arch="tiny", patch=32, batch=BATCH, workers=0, steps=STEPS, val_every=STEPS,
        device="cpu", out=str(single),
    )  # fmt: skip
    train(cfg, progress=False, log=lambda _m: None)
    ddp = load_checkpoint(ddp_run.run, prefer="last")
    one = load_checkpoint(single, prefer="last")
    assert ddp.weights.keys() == one.weights.keys()
    for name, tensor in one.weights.items():
        assert torch.allclose(ddp.weights[name], tensor, rtol=0, atol=1e-5), (
            f"{name}: max difference {(ddp.weights[name] - tensor).abs().max().item():.3g}"
        )
    assert math.isclose(ddp.record["metrics"]["psnr"], one.record["metrics"]["psnr"], abs_tol=1e-3)
