"""--ema: the moving average of the weights, the model a run validates, saves and exports."""

from __future__ import annotations

import pytest
import torch
from clitools import assert_one_line_error, run_edgegen
from torch import nn

from edgegen.train.checkpoint import load_checkpoint, load_model, save_checkpoint
from edgegen.train.config import TrainConfig
from edgegen.train.ema import WeightEMA, warmed_decay
from edgegen.train.trainer import train


def quiet(_message: str) -> None:
    pass


def scalar_model(value: float) -> nn.Module:
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(value)
    return model


def set_weight(model: nn.Module, value: float) -> None:
    with torch.no_grad():
        model.weight.fill_(value)  # type: ignore[operator]


def ema_weight(ema: WeightEMA) -> float:
    return float(ema.module.weight)  # type: ignore[arg-type]


def test_average_without_warmup_starts_from_the_model() -> None:
    model = scalar_model(0.0)
    ema = WeightEMA(model, 0.5, warmup=False)
    set_weight(model, 1.0)
    ema.update(model)
    assert ema_weight(ema) == pytest.approx(0.5)  # 0.5 * 0 + 0.5 * 1
    ema.update(model)
    assert ema_weight(ema) == pytest.approx(0.75)
    assert ema.updates == 2


def test_average_with_warmup_copies_then_warms_up() -> None:
    assert warmed_decay(0.999, 0) == 0.0
    assert warmed_decay(0.999, 1) == pytest.approx(2 / 11)
    assert warmed_decay(0.999, 10_000) == 0.999  # (10001 / 10010) > 0.999: the bound holds
    model = scalar_model(-5.0)  # random weights: the average forgets them at once
    ema = WeightEMA(model, 0.999)
    set_weight(model, 1.0)
    ema.update(model)
    assert ema_weight(ema) == pytest.approx(1.0)
    set_weight(model, 3.0)
    ema.update(model)
    assert ema_weight(ema) == pytest.approx(1.0 * 2 / 11 + 3.0 * 9 / 11)


def test_average_carries_integer_buffers() -> None:
    model = nn.BatchNorm2d(2)
    ema = WeightEMA(model, 0.9, warmup=False)
    model.train()
    for _ in range(3):
        model(torch.randn(4, 2, 3, 3))
        ema.update(model)
    assert int(ema.module.num_batches_tracked) == 3  # type: ignore[arg-type]
    # the running statistics are averaged, not copied
    assert not torch.equal(ema.module.running_mean, model.running_mean)  # type: ignore[arg-type]


def test_load_continues_an_average() -> None:
    a, b = WeightEMA(scalar_model(0.0), 0.5, warmup=False), WeightEMA(scalar_model(9.0), 0.5, False)
    model = scalar_model(1.0)
    a.update(model)
    b.load(a.module.state_dict(), a.updates)
    a.update(model)
    b.update(model)
    assert ema_weight(a) == ema_weight(b) == pytest.approx(0.75)
    assert b.updates == 2


def tiny(out: object, **extra: object) -> TrainConfig:
    options: dict[str, object] = dict(
        arch="tiny", patch=32, batch=2, workers=0, steps=6, val_every=3, out=str(out)
    )
    return TrainConfig(**{**options, **extra})  # type: ignore[arg-type]


def test_ema_run_saves_the_average_and_trains_the_same_weights(tmp_path) -> None:
    train(tiny(tmp_path / "raw"), progress=False, log=quiet)
    train(tiny(tmp_path / "ema", ema=0.9), progress=False, log=quiet)
    train(tiny(tmp_path / "near", ema=1e-6), progress=False, log=quiet)
    raw = load_checkpoint(tmp_path / "raw", prefer="last")
    ema = load_checkpoint(tmp_path / "ema", prefer="last")
    near = load_checkpoint(tmp_path / "near", prefer="last")
    assert raw.train_weights is None
    assert ema.train_weights is not None and near.train_weights is not None
    assert ema.record["ema_updates"] == 6
    for name, value in raw.weights.items():
        # The average does not touch training: the weights trained are the plain run's...
        assert torch.equal(ema.train_weights[name], value), name
        # ...and a decay near 0 averages nothing but the last step.
        assert torch.allclose(near.weights[name], value, atol=1e-5), name
    # With decay 0.9 over six steps the saved model is not the last step's weights.
    assert any(not torch.allclose(ema.weights[n], v, atol=1e-4) for n, v in raw.weights.items())
    # The model a run stands for (export, --init, compare) is the average; the best checkpoint
    # holds it alone.
    model, _, _ = load_model(tmp_path / "ema", prefer="last")
    for name, value in model.state_dict().items():
        assert torch.equal(value, ema.weights[name]), name
    assert load_checkpoint(tmp_path / "ema", prefer="best").train_weights is None


def test_ema_fine_tune_starts_from_the_init_weights(tmp_path) -> None:
    train(tiny(tmp_path / "a"), progress=False, log=quiet)
    # lr 1e-9: the trained weights stay where --init put them, so an average that started
    # anywhere else (a random network) would still be far from them after three steps at 0.99.
    train(tiny(tmp_path / "b", init=str(tmp_path / "a"), lr=1e-9, steps=3, ema=0.99),
          progress=False, log=quiet)  # fmt: skip
    start = load_checkpoint(tmp_path / "a", prefer="best").weights
    tuned = load_checkpoint(tmp_path / "b", prefer="last").weights
    for name, value in start.items():
        assert torch.allclose(tuned[name], value, atol=1e-6), name


class Crash(Exception):
    pass


def crash_after_step(step: int):  # type: ignore[no-untyped-def]
    """A ``log`` that stops training once step ``step``'s checkpoint is written."""

    def log(message: str) -> None:
        if message.startswith(f"step {step}/"):
            raise Crash

    return log


def test_ema_resume_matches_uninterrupted(tmp_path) -> None:
    train(tiny(tmp_path / "a", ema=0.8), progress=False, log=quiet)
    with pytest.raises(Crash):
        train(tiny(tmp_path / "b", ema=0.8), progress=False, log=crash_after_step(3))
    assert load_checkpoint(tmp_path / "b", prefer="last").record["ema_updates"] == 3
    train(TrainConfig(workers=0), resume=str(tmp_path / "b"), progress=False, log=quiet)
    a = load_checkpoint(tmp_path / "a", prefer="last")
    b = load_checkpoint(tmp_path / "b", prefer="last")
    assert a.record["ema_updates"] == b.record["ema_updates"] == 6
    assert a.train_weights is not None and b.train_weights is not None
    for name in a.weights:
        assert torch.equal(a.weights[name], b.weights[name]), f"average {name} differs"
        assert torch.equal(a.train_weights[name], b.train_weights[name]), f"weight {name} differs"


def test_resume_of_an_ema_run_without_its_trained_weights_is_one_line(tmp_path) -> None:
    run = tmp_path / "a"
    with pytest.raises(Crash):
        train(tiny(run, ema=0.8), progress=False, log=crash_after_step(3))
    last = load_checkpoint(run, prefer="last")
    record = {k: v for k, v in last.record.items() if k not in ("format", "format_version")}
    save_checkpoint(run, "last", record, last.weights)  # the trained weights lost
    proc = run_edgegen("train", "--resume", str(run))
    assert_one_line_error(proc, "lacks its trained weights")


def test_ema_option_is_checked() -> None:
    for value in ("1", "-0.1", "1.5"):
        proc = run_edgegen("train", "--arch", "tiny", "--ema", value, "--steps", "1")
        assert_one_line_error(proc, "--ema")
