"""Training end to end on real photos, as a user runs it, then checks of what it wrote."""

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from clitools import run_edgegen

from edgegen.evaluation.photos import bundled_paths
from edgegen.runtime.spec import ModelSpec
from edgegen.train.archs import GeneratorParams, ResidualGenerator
from edgegen.train.checkpoint import load_checkpoint


def edgegen(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = run_edgegen(*args, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A user's folder: real photos (copies of scikit-image's), one in a subfolder."""
    root = tmp_path_factory.mktemp("photos")
    (root / "sub").mkdir()
    for i, path in enumerate(bundled_paths("train")[:6]):
        shutil.copy(path, (root / "sub" if i == 0 else root) / path.name)
    return root


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_denoiser_learns_and_its_checkpoint_is_self_describing(tmp_path, photos):
    opts = "--arch tiny --channels 8 --steps 60 --val-every 30 --patch 48 --batch 8 --workers 1"
    proc = edgegen("train", "--data", str(photos), *opts.split(), "--no-progress", "--out", "run",
                   cwd=tmp_path)  # fmt: skip
    run = tmp_path / "run"
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == [0, 30, 60]
    # Seconds are training time, cumulative; PSNR improves on the untrained network.
    assert rows[0]["seconds"] == 0 and rows[1]["seconds"] < rows[2]["seconds"]
    assert rows[-1]["psnr"] > rows[0]["psnr"] + 3
    assert rows[-1]["psnr"] > rows[-1]["input_psnr"]  # better than the noisy input
    assert "done: run  step 60/60" in proc.stdout

    ckpt = load_checkpoint(run, prefer="last")
    assert ckpt.step == 60 and ckpt.record["total_steps"] == 60
    spec = ModelSpec.from_dict(ckpt.record["spec"])
    assert (spec.task, spec.scale, spec.degradation["sigma"]) == ("denoise", 1, 25.0)
    # The spec alone rebuilds the network: no training code or config needed.
    model = ResidualGenerator(GeneratorParams(**spec.arch_params))
    model.load_state_dict(ckpt.weights)
    assert spec.receptive_field == model.receptive_field()
    best = load_checkpoint(run, prefer="best")
    assert best.record["metrics"]["psnr"] == max(r["psnr"] for r in rows)
    assert best.optimizer_tensors == {}  # best holds weights only
    json_record = json.loads((run / "last.json").read_text())
    assert json_record["step"] == 60 and json_record["spec"] == ckpt.record["spec"]


@pytest.mark.parametrize(
    ("args", "in_size", "out_size"),
    [
        (["--task", "sr", "--scale", "2", "--patch", "48"], 24, 48),
        (["--task", "jpeg", "--quality", "10,40", "--patch", "32"], 32, 32),
        (["--task", "denoise", "--sigma", "5,50", "--color", "gray", "--patch", "32"], 32, 32),
    ],
)
def test_other_tasks_train_and_record_their_spec(tmp_path, photos, args, in_size, out_size):
    opts = "--arch tiny --steps 4 --val-every 4 --batch 2 --workers 0 --no-progress --out run"
    edgegen("train", "--data", str(photos), *opts.split(), *args, cwd=tmp_path)
    ckpt = load_checkpoint(tmp_path / "run")
    spec = ModelSpec.from_dict(ckpt.record["spec"])
    model = ResidualGenerator(GeneratorParams(**spec.arch_params))
    model.load_state_dict(ckpt.weights)
    x = torch.rand(1, spec.in_channels, in_size, in_size)
    assert model(x).shape == (1, spec.out_channels, out_size, out_size)
    metrics = ckpt.record["metrics"]
    assert math.isfinite(metrics["psnr"]) and 15 < metrics["input_psnr"] < 45
    if spec.task == "sr":
        assert spec.degradation == {"kind": "bicubic_downscale", "scale": 2}
    if spec.task == "jpeg":
        assert spec.degradation == {"kind": "jpeg", "quality": [10.0, 40.0]}
    if spec.color_order == "GRAY":
        assert spec.in_channels == 1 and spec.degradation["sigma"] == [5.0, 50.0]


def test_minutes_fixes_the_step_count_and_finishes_the_schedule(tmp_path, photos):
    opts = "--arch tiny --minutes 0.1 --patch 32 --batch 4 --workers 0 --warmup 2 --no-progress"
    edgegen("train", "--data", str(photos), *opts.split(), "--out", "run", cwd=tmp_path)
    ckpt = load_checkpoint(tmp_path / "run", prefer="last")
    total = ckpt.record["total_steps"]
    assert 12 <= total < 10**9 and ckpt.step == total
    lr_end = read_metrics(tmp_path / "run")[-1]["lr"]
    assert lr_end == pytest.approx(1e-5, rel=1e-3)  # the cosine reached its floor
