"""The training loop: data, model, optimiser, schedule, validation, checkpoints, DDP.

Runs unchanged as one process or under ``torchrun`` (DDP: each rank draws its own shard of the
sample stream; rank 0 alone validates and writes).
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgegen.evaluation.degrade import make_degradation
from edgegen.evaluation.photos import LoadResult, Photo, bundled_paths, find_images, load_all
from edgegen.runtime import __version__
from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.files import atomic_write_text, folder_lock, remove_stale_temps
from edgegen.runtime.spec import ModelSpec, Provenance

from . import archs
from .checkpoint import load_checkpoint, optimizer_state_from, save_checkpoint
from .config import TrainConfig
from .data import PatchDataset, StreamSampler, val_samples
from .ema import WeightEMA
from .validate import Validator, summarize

Log = Callable[[str], None]
UNKNOWN_TOTAL = 10**12  # a --minutes run's step count before the first steps were timed


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class TrainResult:
    run: Path
    step: int
    total_steps: int
    metrics: dict[str, float]
    best: dict[str, float]
    curve: list[dict[str, Any]] = field(default_factory=list)
    patches_per_s: float | None = None  # training patches per second (validation excluded)


# ----------------------------------------------------------------------------------- data


def load_photos(cfg: TrainConfig, log: Log) -> tuple[list[Photo], list[Photo]]:
    """Training and held-out photos, with unreadable and too-small files skipped (and named)."""
    bundled = cfg.data == "bundled"
    train_root = None if bundled else Path(cfg.data)
    train = load_all(
        bundled_paths("train") if bundled else find_images(Path(cfg.data)),
        cfg.channels_io,
        train_root,
    )
    if cfg.val == "bundled" or (cfg.val is None and bundled):
        val = load_all(bundled_paths("val"), cfg.channels_io)
    elif cfg.val is not None:
        val = load_all(find_images(Path(cfg.val)), cfg.channels_io, Path(cfg.val))
    else:
        val = LoadResult([], [])
    failed = train.failed + val.failed
    if failed:
        listing = "; ".join(f"{p} ({why})" for p, why in failed)
        log(f"edgegen: warning: skipped {len(failed)} unreadable image(s): {listing}")
    if not train.photos:
        raise EdgegenError(f"no readable training images in {cfg.data}")
    if cfg.val is None and not bundled:
        # A fixed split of the user's readable photos: every 10th (at least one) is held out.
        if len(train.photos) == 1:
            log(f"edgegen: warning: {cfg.data} holds one image; validating on the training image")
            val.photos = list(train.photos)
        else:
            held = set(range(0, len(train.photos), max(2, min(10, len(train.photos)))))
            val.photos = [p for i, p in enumerate(train.photos) if i in held]
            train.photos = [p for i, p in enumerate(train.photos) if i not in held]
    if not val.photos:
        raise EdgegenError(f"no readable validation images in {cfg.val}")

    fits = [p for p in train.photos if min(p.height, p.width) >= cfg.patch]
    if not fits:
        largest = max(train.photos, key=lambda p: min(p.height, p.width))
        raise EdgegenError(
            f"--patch {cfg.patch} is larger than every training image "
            f"(largest: {largest.name}, {largest.width}x{largest.height})"
        )
    if len(fits) < len(train.photos):
        small = [p.name for p in train.photos if min(p.height, p.width) < cfg.patch]
        log(
            f"edgegen: warning: {len(small)} image(s) smaller than --patch {cfg.patch} not used: "
            + ", ".join(small)
        )
    return fits, val.photos


# ----------------------------------------------------------------------------------- pieces


def build_model(cfg: TrainConfig) -> Any:
    """The network of ``cfg``: a :class:`~edgegen.train.archs.ResidualGenerator` or a
    :class:`~edgegen.train.archs.ResidualUNet`."""
    return archs.build(
        cfg.arch,
        channels=cfg.channels,
        blocks=cfg.blocks,
        levels=cfg.levels,
        scale=cfg.effective_scale,
        in_channels=cfg.channels_io,
        out_channels=cfg.channels_io,
        act=cfg.act,
        batch_norm=cfg.batch_norm,
        res_scale=cfg.res_scale,
        act_after_add=cfg.act_after_add,
    )


def load_init_weights(model: nn.Module, source: str) -> None:
    """``--init``: the weights of another run's best checkpoint, which must be of the same
    architecture (one line naming the mismatch otherwise). The optimiser and schedule start anew."""
    ckpt = load_checkpoint(source, prefer="best")
    try:
        model.load_state_dict(ckpt.weights)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise EdgegenError(
            f"--init {source}: its weights do not fit this run's network ({detail}); "
            "give the architecture options it was trained with"
        ) from None


def make_spec(cfg: TrainConfig, model: Any) -> ModelSpec:
    degradation = make_degradation(cfg.task, cfg.sigma, cfg.effective_scale, cfg.quality)
    return ModelSpec(
        task=cfg.task,
        scale=cfg.effective_scale,
        in_channels=cfg.channels_io,
        out_channels=cfg.channels_io,
        color_order="RGB" if cfg.channels_io == 3 else "GRAY",
        arch=model.arch_name,
        arch_params=model.params.to_dict(),
        receptive_field=model.receptive_field(),
        pad_multiple=getattr(model, "pad_multiple", 1),
        degradation=degradation.describe(),
        provenance=Provenance(edgegen_version=__version__, run=Path(cfg.out).name),
    )


def loss_function(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if name == "l1":
        return F.l1_loss
    if name == "mse":
        return F.mse_loss
    if name == "charbonnier":
        return lambda out, target: torch.sqrt((out - target) ** 2 + 1e-6).mean()
    if name == "psnr":
        return psnr_loss
    raise EdgegenError(f"unknown loss {name!r}")


def psnr_loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Minus the mean PSNR of the patches (NAFNet's PSNR loss, in dB). MSE over a batch is
    dominated by its noisiest patches (the error at sigma 50 is ten times that at 15); the mean
    of per-patch log errors gives every patch an equal say in dB, so a blind model is not tuned
    for its strongest noise at the cost of its weakest, nor for textured patches at the cost of
    flat ones, where a small bias is what the eye sees."""
    mse = ((out - target) ** 2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(mse + 1e-10).mean()


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


class Schedule:
    """Linear warm-up, then cosine decay to ``min_lr`` at the final step (or a constant rate).

    A callable object rather than a lambda so that ``total`` can be fixed late, for --minutes.
    """

    def __init__(self, cfg: TrainConfig, total: int) -> None:
        self.warmup = cfg.warmup
        self.cosine = cfg.schedule == "cosine"
        self.floor = min(1.0, cfg.min_lr / cfg.lr)
        self.total = total

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        if not self.cosine:
            return 1.0
        span = max(1, self.total - self.warmup)
        t = min(1.0, (step - self.warmup) / span)
        return self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * t))


# ----------------------------------------------------------------------------------- DDP


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def init_dist(device_kind: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    dist = Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not torch.distributed.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    if device_kind == "cpu":
        # Ranks on one machine share its cores; each takes its share instead of all of them.
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    return dist


def pick_device(name: str, dist: Dist) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise EdgegenError(
            "--device cuda: torch sees no CUDA device (torch.cuda.is_available() is False)"
        )
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", dist.local_rank)
    return torch.device("cpu")


# ----------------------------------------------------------------------------------- loop


def prepare_run(cfg: TrainConfig, resume: str | None) -> tuple[TrainConfig, Any]:
    """The config to train with and the checkpoint to continue from (if resuming)."""
    if resume is None:
        out = Path(cfg.out)
        if out.exists() and not out.is_dir():
            raise EdgegenError(f"--out {out} is a file, not a folder; choose another --out")
        if (out / "last.safetensors").exists():
            raise EdgegenError(
                f"{out} already holds a training run; pass --resume {out} to continue it, "
                "or choose another --out"
            )
        return cfg, None
    ckpt = load_checkpoint(resume, prefer="last")
    saved = TrainConfig.from_dict(ckpt.record["config"], where=f"config in {ckpt.path}")
    # Only settings that do not change the maths may differ on resume.
    saved.out = str(Path(resume) if Path(resume).is_dir() else ckpt.path.parent)
    saved.workers, saved.device = cfg.workers, cfg.device
    return saved, ckpt


def train(
    cfg: TrainConfig, resume: str | None = None, progress: bool = True, log: Log = _stderr
) -> TrainResult:
    """Train ``cfg`` (or continue the run at ``resume``) and return the final metrics."""
    cfg.validate()
    cfg, ckpt = prepare_run(cfg, resume)
    dist = init_dist(
        "cuda"
        if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    if dist.world == 1:
        return _train(cfg, ckpt, dist, progress, log)
    try:
        result = _train(cfg, ckpt, dist, progress, log)
        # Tear down in order. The DDP wrapper (its reducer holds gloo work objects) sits in
        # reference cycles; left to interpreter shutdown, or to outlive the group, it aborts
        # the process ("terminate called without an active exception", SIGABRT) now and then.
        # So: collect it now, wait until every rank has, then destroy the group.
        gc.collect()
        dist.barrier()
        return result
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _train(cfg: TrainConfig, ckpt: Any, dist: Dist, progress: bool, log: Log) -> TrainResult:
    """One process's training, in order: data, model and optimiser (restored on resume), the
    step's precision and wrappers, the loader, validation at step 0, the loop, the result."""
    run = _Run(cfg, dist, log)
    run.build(ckpt)
    loader = run.loader()
    with contextlib.ExitStack() as held:
        if dist.main:  # one process writes the run folder: a second `train --out` is refused
            run.path.mkdir(parents=True, exist_ok=True)
            held.enter_context(folder_lock(run.path, "run folder"))
        bar = run.start(progress)
        try:
            run.loop(iter(loader), bar)
        finally:
            if bar is not None:
                bar.close()
        return run.result()


class _Run:
    """The state of one training run and the steps that move it on (see :func:`_train`)."""

    def __init__(self, cfg: TrainConfig, dist: Dist, log: Log) -> None:
        self.cfg, self.dist, self.log = cfg, dist, log
        self.device = pick_device(cfg.device, dist)
        self.path = Path(cfg.out)
        self.scale = cfg.effective_scale
        self.step = self.start_step = 0
        self.elapsed = 0.0
        self.best, self.best_step = -math.inf, 0
        self.curve: list[dict[str, Any]] = []
        self.val_time = 0.0
        self.elapsed_at_start = 0.0

    # -- building --------------------------------------------------------------------------

    def build(self, ckpt: Any) -> None:
        cfg, dist = self.cfg, self.dist
        train_photos, val_photos = load_photos(cfg, self.log if dist.main else (lambda _m: None))
        degradation = make_degradation(cfg.task, cfg.sigma, self.scale, cfg.quality)
        self.dataset = PatchDataset(
            train_photos, degradation, cfg.patch, cfg.seed, self.scale, cfg.augmentations
        )
        if cfg.batch % dist.world:
            raise EdgegenError(f"--batch {cfg.batch} is not divisible by {dist.world} processes")
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg).to(self.device)
        self.spec = make_spec(cfg, self.model)
        self.optimizer = make_optimizer(cfg, self.model)
        self.total = (
            cfg.steps if cfg.steps is not None else (UNKNOWN_TOTAL if cfg.minutes else 1000)
        )
        self.schedule = Schedule(cfg, self.total)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.schedule)
        if ckpt is not None:
            self._restore(ckpt)
        elif cfg.init is not None:
            load_init_weights(self.model, cfg.init)
        # --ema: the average starts from the weights training starts from (a resumed run's
        # average is its checkpoint's); only an average of random weights warms up.
        self.ema = WeightEMA(self.model, cfg.ema, warmup=cfg.init is None) if cfg.ema else None
        if self.ema is not None and ckpt is not None:
            self.ema.load(ckpt.weights, int(ckpt.record["ema_updates"]))
        self._precision_and_wrappers()
        self.validator = (
            Validator(val_samples(val_photos, degradation, self.scale), self.scale)
            if dist.main
            else None
        )
        self.loss_fn = loss_function(cfg.loss)
        self.mark = {"step": self.step, "elapsed": self.elapsed}  # last patches/s interval

    def _restore(self, ckpt: Any) -> None:
        """Continue from a checkpoint: weights, optimiser, schedule, RNG, counters, curve."""
        if self.cfg.ema and ckpt.train_weights is None:
            raise EdgegenError(f"{ckpt.path}: an --ema run's checkpoint lacks its trained weights")
        self.model.load_state_dict(ckpt.train_weights if self.cfg.ema else ckpt.weights)
        self.optimizer.load_state_dict(optimizer_state_from(ckpt))
        self.scheduler.load_state_dict(ckpt.record["scheduler"])
        if ckpt.torch_rng is not None:
            torch.set_rng_state(ckpt.torch_rng)
        self.step = self.start_step = ckpt.step
        self.elapsed = float(ckpt.record["elapsed_s"])
        self.total = int(ckpt.record["total_steps"])
        self.schedule.total = self.total
        self.best = float(ckpt.record.get("best", {}).get("psnr", -math.inf))
        self.best_step = int(ckpt.record.get("best", {}).get("step", 0))
        self.curve = _read_metrics(self.path, upto=self.step)

    def _precision_and_wrappers(self) -> None:
        """AMP and channels_last on CUDA, then DDP and torch.compile around the module."""
        cfg = self.cfg
        cuda = self.device.type == "cuda"
        self.channels_last = cuda and cfg.channels_last
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        amp_dtype = pick_amp_dtype(cfg, cuda)
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
        self.autocast: Any = (
            torch.autocast("cuda", dtype=amp_dtype)
            if amp_dtype is not None
            else contextlib.nullcontext()
        )
        net: nn.Module = self.model
        if self.dist.world > 1:
            net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if cuda else None
            )
        if cfg.compile:
            # Compiled around DDP (as PyTorch recommends); validation and checkpoints keep using
            # the plain module, whose state_dict names do not carry compile's prefix.
            net = torch.compile(net)  # type: ignore[assignment]
        self.net = net

    def loader(self) -> torch.utils.data.DataLoader[Any]:
        cfg, dist = self.cfg, self.dist
        return torch.utils.data.DataLoader(
            self.dataset,
            batch_size=cfg.batch // dist.world,
            sampler=StreamSampler(self.step, cfg.batch, dist.rank, dist.world),
            num_workers=cfg.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=cfg.workers > 0,
            prefetch_factor=4 if cfg.workers > 0 else None,
        )

    # -- validation and checkpoints --------------------------------------------------------

    @property
    def validated(self) -> nn.Module:
        """The model the run stands for: the moving average with --ema, else the weights."""
        return self.ema.module if self.ema is not None else self.model

    def record(self, step: int, metrics: dict[str, Any]) -> dict[str, Any]:
        return {
            **({"ema_updates": self.ema.updates} if self.ema is not None else {}),
            "step": step,
            "total_steps": self.total,
            "elapsed_s": self.elapsed,
            "config": self.cfg.to_dict(),
            "spec": self.spec.to_dict(),
            "metrics": metrics,
            "best": {"psnr": self.best, "step": self.best_step},
            "scheduler": self.scheduler.state_dict(),
        }

    def validate_and_save(self, step: int, train_loss: float | None) -> dict[str, Any]:
        assert self.validator is not None
        t0 = time.perf_counter()
        scores = self.validator.run(self.validated, self.device)
        seconds = self.elapsed - self.mark["elapsed"]
        rate = (step - self.mark["step"]) * self.cfg.batch / seconds if seconds > 0 else None
        self.mark.update(step=step, elapsed=self.elapsed)
        metrics: dict[str, Any] = {
            "step": step,
            "seconds": round(self.elapsed, 3),
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": train_loss,
            "patches_per_s": round(rate, 2) if rate is not None else None,
            **summarize(scores),
            "images": {
                s.name: {
                    "psnr": s.psnr,
                    "ssim": s.ssim,
                    "shift": s.shift,
                    "dark_shift": s.dark_shift,
                }
                for s in scores
            },
            "val_seconds": round(time.perf_counter() - t0, 3),
        }
        self.curve.append(metrics)
        lines = "".join(json.dumps(m) + "\n" for m in self.curve)
        atomic_write_text(self.path / "metrics.jsonl", lines)
        improved = metrics["psnr"] > self.best
        if improved:
            self.best, self.best_step = metrics["psnr"], step
        state = self.validated.state_dict()
        # best before last: a run killed between the two resumes from the older `last` and,
        # being deterministic, reaches and re-saves this same best again.
        if improved:
            save_checkpoint(self.path, "best", self.record(step, metrics), state)
        optimizer = self.optimizer.state_dict()
        trained = self.model.state_dict() if self.ema is not None else None
        save_checkpoint(self.path, "last", self.record(step, metrics), state, optimizer, trained)
        return metrics

    def start(self, progress: bool) -> Any:
        """The run folder and the progress bar (rank 0); validation at step 0 of a new run."""
        bar = None
        if self.dist.main:
            self.path.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(self.path)  # left by a write that a SIGKILL interrupted
            if progress:
                from tqdm import tqdm

                bar = tqdm(
                    total=None if self.total == UNKNOWN_TOTAL else self.total,
                    initial=self.step,
                    desc="train",
                    unit="step",
                    dynamic_ncols=True,
                    mininterval=0.5 if sys.stderr.isatty() else 10.0,
                    file=sys.stderr,
                )
        if self.dist.main and self.step == 0:
            m0 = self.validate_and_save(0, None)
            self.val_time = m0["val_seconds"]
            _report(self.log, bar, m0, self.total)
        self.dist.barrier()
        return bar

    # -- the loop --------------------------------------------------------------------------

    def train_step(self, degraded: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        degraded = degraded.to(self.device, non_blocking=True)
        clean = clean.to(self.device, non_blocking=True)
        if self.channels_last:
            degraded = degraded.contiguous(memory_format=torch.channels_last)
        with self.autocast:
            loss = self.loss_fn(self.net(degraded).float(), clean)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return loss.detach()

    def loop(self, iterator: Any, bar: Any) -> None:
        self.elapsed_at_start = self.elapsed
        # The running loss stays on the device: a float() per step would sync CUDA every step.
        running, count = torch.zeros((), device=self.device), 0
        t_last = time.perf_counter()
        calib = (2, 12)  # steps timed to fix the step count of a --minutes run
        calib_t0 = 0.0
        while self.step < self.total:
            degraded, clean = next(iterator)
            running += self.train_step(degraded, clean)
            self.step += 1
            count += 1
            now = time.perf_counter()
            self.elapsed += now - t_last
            t_last = now
            if self.total == UNKNOWN_TOTAL and self.step - self.start_step in calib:
                if self.step - self.start_step == calib[0]:
                    calib_t0 = now
                else:
                    self._fix_total(now - calib_t0, calib, bar)
            if bar is not None:
                bar.update(1)
                if self.step % 25 == 0:
                    bar.set_postfix(
                        loss=f"{float(running) / count:.4f}",
                        lr=f"{self.optimizer.param_groups[0]['lr']:.2e}",
                        refresh=False,
                    )
            if self.step % self.cfg.val_every == 0 or self.step == self.total:
                if self.dist.main:
                    metrics = self.validate_and_save(self.step, float(running) / count)
                    _report(self.log, bar, metrics, self.total)
                running.zero_()
                count = 0
                self.dist.barrier()
                t_last = time.perf_counter()  # validation time is not training time
        del iterator

    def _fix_total(self, timed: float, calib: tuple[int, int], bar: Any) -> None:
        """A --minutes run: the step count that fits, from the steps timed so far."""
        self.total = _steps_for_budget(self.cfg, self.dist, timed, calib, self.val_time)
        self.schedule.total = self.total
        # The rate for the next step was set before the total was known: redo it (with the
        # budget's minimum, this step is the last and must be the floor).
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
            group["lr"] = base * self.schedule(self.step)
        if bar is not None:
            bar.total = self.total

    def result(self) -> TrainResult:
        final = self.curve[-1] if self.curve else {}
        best, best_step = self.best, self.best_step
        if self.dist.world > 1:  # every rank returns rank 0's numbers, not its own empty ones
            shared: list[Any] = [final, best, best_step]
            torch.distributed.broadcast_object_list(shared, src=0)
            final, best, best_step = shared
        trained = self.elapsed - self.elapsed_at_start
        steps = self.step - self.start_step
        return TrainResult(
            run=self.path,
            step=self.step,
            total_steps=self.total,
            metrics={k: v for k, v in final.items() if isinstance(v, float)},
            best={"psnr": best, "step": best_step},
            curve=self.curve,
            patches_per_s=steps * self.cfg.batch / trained if trained > 0 else None,
        )


def pick_amp_dtype(cfg: TrainConfig, cuda: bool) -> torch.dtype | None:
    """The autocast dtype: none on the CPU or with --no-amp; bf16 or fp16 as asked; auto takes
    bf16 where the GPU supports it (no loss scaling needed), else fp16."""
    if not cuda or not cfg.amp:
        return None
    if cfg.amp_dtype == "fp16":
        return torch.float16
    if cfg.amp_dtype == "bf16":
        if not torch.cuda.is_bf16_supported():
            raise EdgegenError("--amp-dtype bf16: this GPU does not support bfloat16; use fp16")
        return torch.bfloat16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _steps_for_budget(
    cfg: TrainConfig, dist: Dist, timed: float, calib: tuple[int, int], val_time: float
) -> int:
    """Steps that fit in --minutes: T = steps * t_step + (steps / val_every) * t_val."""
    assert cfg.minutes is not None
    per_step = timed / (calib[1] - calib[0])
    steps = int(cfg.minutes * 60.0 / (per_step + val_time / cfg.val_every))
    steps = max(calib[1], steps)
    if dist.world > 1:
        value = torch.tensor([steps], dtype=torch.int64)
        torch.distributed.broadcast(value, src=0)
        steps = int(value.item())
    return steps


def _report(log: Log, bar: Any, m: dict[str, Any], total: int) -> None:
    loss = f"loss {m['train_loss']:.4f}  " if m.get("train_loss") is not None else ""
    rate = f"  {m['patches_per_s']:.1f} patches/s" if m.get("patches_per_s") else ""
    of = "?" if total == UNKNOWN_TOTAL else total  # a --minutes run before its steps are timed
    line = (
        f"step {m['step']}/{of}  {loss}val PSNR {m['psnr']:.2f} dB  SSIM {m['ssim']:.4f}  "
        f"(input {m['input_psnr']:.2f} dB, {m['input_ssim']:.4f})  "
        f"shift {m['shift']:.2f} LSB (dark {m['dark_shift']:.2f})  {m['seconds']:.0f}s{rate}"
    )
    if bar is not None:
        bar.write(line, file=sys.stderr)
    else:
        log(line)


def _read_metrics(run: Path, upto: int) -> list[dict[str, Any]]:
    """The metrics already logged, minus any written after the checkpoint we resume from."""
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row["step"] <= upto:
                rows.append(row)
    return rows
