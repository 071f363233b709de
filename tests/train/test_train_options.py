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
from edgegen.train.trainer import pick_amp_dtype, train


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
