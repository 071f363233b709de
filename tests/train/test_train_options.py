"""Training options for GPUs that also run on the CPU: torch.compile, the AMP dtype choice, and
the patches/s that a run reports."""

from __future__ import annotations

import json

import pytest
import torch
from clitools import TINY, assert_one_line_error, run_edgegen

from edgegen.runtime.errors import EdgegenError
from edgegen.train.checkpoint import load_model
from edgegen.train.config import TrainConfig, build_config
from edgegen.train.trainer import loss_function, pick_amp_dtype, train


def test_compiled_training_reports_patches_per_second(tmp_path, monkeypatch):
    # torch.compile really traces the training step (TorchDynamo), with the eager backend:
    # Inductor's C++ build takes minutes on two shared cores; on a GPU it is the default.
    calls = []
    real_compile = torch.compile

    def eager_compile(module, **kwargs):
        calls.append(module)
        return real_compile(module, backend="eager", **kwargs)

    monkeypatch.setattr(torch, "compile", eager_compile)
    cfg = TrainConfig(
        arch="tiny", patch=32, batch=2, workers=0, steps=4, val_every=2, compile=True,
        out=str(tmp_path / "run"),
    )  # fmt: skip
    lines: list[str] = []
    result = train(cfg, progress=False, log=lines.append)
    assert result.step == 4
    assert len(calls) == 1
    assert result.patches_per_s is not None and result.patches_per_s > 0
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["patches_per_s"] is None  # step 0: nothing trained yet
    assert all(r["patches_per_s"] > 0 for r in rows[1:])
    assert "patches/s" in lines[-1]
    # the checkpoint holds the plain module's names, not torch.compile's wrapper
    model, _, _ = load_model(tmp_path / "run", prefer="last")
    assert not any(k.startswith("_orig_mod") for k in model.state_dict())


def test_amp_dtype_choice():
    cfg = build_config(None, {"amp_dtype": "fp16", "compile": True, "channels_last": False})
    assert (cfg.amp_dtype, cfg.compile, cfg.channels_last) == ("fp16", True, False)
    assert pick_amp_dtype(cfg, cuda=False) is None  # never on the CPU
    if torch.cuda.is_available():
        assert pick_amp_dtype(cfg, cuda=True) is torch.float16
    with pytest.raises(EdgegenError, match="unknown amp_dtype 'fp8'; choose from auto, bf16"):
        build_config(None, {"amp_dtype": "fp8"})


def test_cli_options(tmp_path):
    proc = run_edgegen("train", *TINY, "--amp-dtype", "fp8", "--out", str(tmp_path / "r"))
    assert_one_line_error(proc, "amp_dtype", "fp8")
    proc = run_edgegen("train", "--help")
    assert "--compile" in proc.stdout and "--amp-dtype" in proc.stdout
    assert "--no-channels-last" in proc.stdout


def test_init_starts_from_another_runs_weights(tmp_path):
    # A first run, then a fine-tune from its best weights with another loss and learning rate.
    base = TrainConfig(
        arch="tiny", patch=32, batch=2, workers=0, steps=3, val_every=3, out=str(tmp_path / "a")
    )
    train(base, progress=False, log=lambda _m: None)
    trained, _, _ = load_model(tmp_path / "a")
    cfg = TrainConfig(
        arch="tiny", patch=32, batch=2, workers=0, steps=1, val_every=1, loss="mse", lr=1e-9,
        init=str(tmp_path / "a"), out=str(tmp_path / "b"),
    )  # fmt: skip
    lines: list[str] = []
    train(cfg, progress=False, log=lines.append)
    # Step 0's validation is the first run's model, not a fresh one's: the weights carried over.
    first = json.loads((tmp_path / "a" / "metrics.jsonl").read_text().splitlines()[-1])
    start = json.loads((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()[0])
    assert start["step"] == 0 and start["psnr"] == pytest.approx(first["psnr"], abs=1e-6)
    tuned, _, ckpt = load_model(tmp_path / "b", prefer="last")
    # lr 1e-9 for one step: the weights are the first run's to float precision, a new schedule
    assert ckpt.step == 1 and ckpt.record["total_steps"] == 1
    assert ckpt.record["config"]["init"] == str(tmp_path / "a")
    for name, value in trained.state_dict().items():
        assert torch.allclose(tuned.state_dict()[name], value, atol=1e-6), name


def test_init_refuses_another_architecture(tmp_path):
    run = tmp_path / "a"
    train(
        TrainConfig(arch="tiny", patch=32, batch=2, workers=0, steps=1, val_every=1, out=str(run)),
        progress=False,
        log=lambda _m: None,
    )
    proc = run_edgegen("train", *TINY, "--channels", "12", "--init", str(run), "--steps", "1",
                       "--out", str(tmp_path / "b"))  # fmt: skip
    assert_one_line_error(proc, "--init", "do not fit")
    assert not (tmp_path / "b" / "last.safetensors").exists()
    proc = run_edgegen("train", *TINY, "--init", str(tmp_path / "nope"), "--steps", "1",
                       "--out", str(tmp_path / "c"))  # fmt: skip
    assert_one_line_error(proc, "does not exist")


def test_psnr_loss_is_minus_the_mean_patch_psnr():
    # Two patches against a black target: a constant 0.1 error (MSE 1e-2, 20 dB) and a constant
    # 0.01 error (MSE 1e-4, 40 dB). The loss is -(20 + 40) / 2 dB; MSE would be dominated by
    # the first patch.
    target = torch.zeros(2, 3, 8, 8)
    out = torch.cat([torch.full((1, 3, 8, 8), 0.1), torch.full((1, 3, 8, 8), 0.01)])
    loss = loss_function("psnr")(out, target)
    assert float(loss) == pytest.approx(-30.0, abs=1e-3)
    # Each patch's error moves the loss by the same amount in dB when it halves: the gradient
    # does not favour the noisier patch as MSE's does (100 times more there).
    out.requires_grad_(True)
    loss_function("psnr")(out, target).backward()
    assert out.grad is not None
    per_patch = out.grad.flatten(1).sum(dim=1) * torch.tensor([0.1, 0.01])
    assert float(per_patch[0]) == pytest.approx(float(per_patch[1]), rel=1e-4)


def test_psnr_loss_trains(tmp_path):
    cfg = TrainConfig(
        arch="tiny", patch=32, batch=2, workers=0, steps=3, val_every=3, loss="psnr",
        out=str(tmp_path / "run"),
    )  # fmt: skip
    result = train(cfg, progress=False, log=lambda _m: None)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert result.step == 3 and rows[-1]["train_loss"] < 0  # minus a PSNR in dB
    with pytest.raises(EdgegenError, match="unknown loss 'ssim'"):
        build_config(None, {"loss": "ssim"})
