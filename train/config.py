"""TrainConfig: one dataclass whose fields equal the ``edgegen train`` options.

Values come, in increasing priority, from the dataclass defaults, a TOML preset (``--preset``:
a packaged name such as ``denoise-small`` or a path) and the options given on the command line.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from edgegen.runtime.errors import EdgegenError

from .archs import ACTIVATIONS
from .archs import names as arch_names

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TASKS = ("denoise", "sr", "jpeg")
LOSSES = ("l1", "mse", "charbonnier", "psnr")
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("cosine", "constant")
COLORS = ("rgb", "gray")
DEVICES = ("auto", "cpu", "cuda")
AMP_DTYPES = ("auto", "bf16", "fp16")  # auto: bf16 where the GPU has it, else fp16
# What training may change in a clean patch, each a change the model's output must follow:
# flips (the square's 8 symmetries), channels (RGB order permuted), gamma (exposure and gamma,
# clipped: saturated content), dark (a patch darkened to a dim scene), bright (its mirror: a
# patch lifted towards white, a high-key scene). "none" keeps it as is.
AUGMENTS = ("flips", "channels", "gamma", "dark", "bright", "none")

Range = tuple[float, float]


@dataclass
class TrainConfig:
    # what to learn
    task: str = "denoise"
    sigma: float | Range = 25.0  # denoise: noise sigma in 8-bit steps, or a (low, high) range
    scale: int | None = None  # sr: 2, 3 or 4 (default 2); other tasks: 1
    quality: float | Range = 30.0  # jpeg: quality, or a (low, high) range
    color: str = "rgb"
    # the network
    arch: str = "small"
    channels: int | None = None  # overrides the arch preset
    blocks: int | None = None
    levels: int | None = None  # resolutions of a U-Net arch (overrides its preset)
    act: str = "relu"
    batch_norm: bool = False
    act_after_add: bool = False
    res_scale: float = 1.0
    # data
    data: str = "bundled"  # 'bundled' or a folder of images
    val: str | None = None  # held-out photos: 'bundled', a folder, or None for the default split
    augment: str = "flips"  # comma-separated, from AUGMENTS
    patch: int = 64
    batch: int = 16
    workers: int = 1
    # optimisation
    init: str | None = None  # start from this run's (or checkpoint's) weights, on a new schedule
    steps: int | None = None
    minutes: float | None = None
    loss: str = "l1"
    optimizer: str = "adamw"
    lr: float = 2e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.0
    warmup: int = 50
    schedule: str = "cosine"
    grad_clip: float = 1.0  # max gradient norm; 0 disables clipping
    ema: float = 0.0  # decay of the weights' moving average that is validated and saved; 0: off
    # bookkeeping
    out: str = "runs/train"
    val_every: int = 250
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision on CUDA (never on CPU)
    amp_dtype: str = "auto"  # bf16 | fp16 | auto (bf16 where supported)
    channels_last: bool = True  # NHWC activations and weights on CUDA (never on CPU)
    compile: bool = False  # torch.compile the training forward pass
    preset: str | None = field(default=None, metadata={"bookkeeping": True})

    @property
    def effective_scale(self) -> int:
        if self.task == "sr":
            return self.scale if self.scale is not None else 2
        return 1

    @property
    def augmentations(self) -> tuple[str, ...]:
        return tuple(a.strip() for a in self.augment.split(",") if a.strip())

    @property
    def channels_io(self) -> int:
        return 3 if self.color == "rgb" else 1

    def validate(self) -> None:
        """Reject impossible settings with one line naming the option."""
        _choice("task", self.task, TASKS)
        _choice("arch", self.arch, tuple(arch_names()))
        _choice("act", self.act, ACTIVATIONS)
        _choice("loss", self.loss, LOSSES)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("color", self.color, COLORS)
        _choice("device", self.device, DEVICES)
        _choice("amp_dtype", self.amp_dtype, AMP_DTYPES)
        for item in self.augmentations:
            _choice("augment", item, AUGMENTS)
        from .archs import get as arch_preset

        family = arch_preset(self.arch).family
        if family == "residual_unet":
            unsupported = [
                name
                for name, on in (
                    ("--batch-norm", self.batch_norm),
                    ("--act-after-add", self.act_after_add),
                    ("--res-scale", self.res_scale != 1.0),
                )
                if on
            ]
            if unsupported:
                raise EdgegenError(f"arch {self.arch} (a U-Net) has no {', '.join(unsupported)}")
        elif self.levels is not None:
            raise EdgegenError(f"--levels applies to U-Net archs, not {self.arch}")
        if self.levels is not None and not 1 <= self.levels <= 6:
            raise EdgegenError(f"--levels must be 1 to 6, got {self.levels}")
        if self.scale is not None:
            if self.task != "sr" and self.scale != 1:
                raise EdgegenError(f"--scale applies to task sr only (task is {self.task})")
            if self.task == "sr" and self.scale not in (2, 3, 4):
                raise EdgegenError(f"--scale must be 2, 3 or 4, got {self.scale}")
        for name, lo_bound in (("sigma", 0.0), ("quality", 1.0)):
            value = getattr(self, name)
            values = value if isinstance(value, tuple) else (value,)
            if any(v < lo_bound for v in values):
                raise EdgegenError(f"--{name} must be >= {lo_bound:g}, got {_fmt(value)}")
            if isinstance(value, tuple) and value[0] > value[1]:
                raise EdgegenError(f"--{name} range must be low,high with low <= high")
        if any(
            q > 100 for q in (self.quality if isinstance(self.quality, tuple) else (self.quality,))
        ):
            raise EdgegenError(f"--quality must be <= 100, got {_fmt(self.quality)}")
        positive = {
            "patch": self.patch,
            "batch": self.batch,
            "lr": self.lr,
            "val_every": self.val_every,
            "res_scale": self.res_scale,
        }
        for name, value in positive.items():
            if value <= 0:
                raise EdgegenError(f"--{name.replace('_', '-')} must be > 0, got {value}")
        for name in ("channels", "blocks", "steps"):
            value = getattr(self, name)
            if value is not None and value < (0 if name == "blocks" else 1):
                raise EdgegenError(f"--{name} must be >= 1, got {value}")
        if self.minutes is not None and self.minutes <= 0:
            raise EdgegenError(f"--minutes must be > 0, got {self.minutes}")
        if self.steps is not None and self.minutes is not None:
            raise EdgegenError("give --steps or --minutes, not both")
        for name in ("workers", "warmup", "seed"):
            if getattr(self, name) < 0:
                raise EdgegenError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.ema < 1.0:
            raise EdgegenError(f"--ema must be 0 (off) or a decay in (0, 1), got {self.ema:g}")
        if self.grad_clip < 0 or self.weight_decay < 0 or self.min_lr < 0:
            raise EdgegenError("--grad-clip, --weight-decay and --min-lr must be >= 0")
        if self.patch % self.effective_scale:
            raise EdgegenError(
                f"--patch {self.patch} must be a multiple of the scale {self.effective_scale}"
            )

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("sigma", "quality"):
            if isinstance(data[key], tuple):
                data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> TrainConfig:
        return cls(**coerce_fields(data, where))


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise EdgegenError(f"unknown {name} {value!r}; choose from {', '.join(choices)}")


def _fmt(value: float | Range) -> str:
    return f"{value[0]:g},{value[1]:g}" if isinstance(value, tuple) else f"{value:g}"


def parse_range(value: Any, name: str) -> float | Range:
    """'25' -> 25.0; '5,50' or [5, 50] -> (5.0, 50.0)."""
    try:
        if isinstance(value, (list, tuple)):
            parts = [float(v) for v in value]
        elif isinstance(value, str):
            parts = [float(v) for v in value.split(",")]
        elif isinstance(value, bool):
            raise ValueError
        else:
            parts = [float(value)]
    except (TypeError, ValueError):
        raise EdgegenError(f"--{name} must be a number or low,high; got {value!r}") from None
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        return (parts[0], parts[1])
    raise EdgegenError(f"--{name} must be a number or low,high; got {value!r}")


def coerce_fields(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Check names and types of config values (from TOML, JSON or the CLI)."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise EdgegenError(f"{where}: unknown option(s) {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for name, value in data.items():
        default = fields[name].default
        if name in ("sigma", "quality"):
            out[name] = parse_range(value, name)
        elif value is None:
            out[name] = None
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise EdgegenError(f"{where}: {name} must be true or false, got {value!r}")
            out[name] = value
        elif name in ("scale", "channels", "blocks", "levels", "steps") or isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise EdgegenError(f"{where}: {name} must be an integer, got {value!r}")
            out[name] = value
        elif name == "minutes" or isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise EdgegenError(f"{where}: {name} must be a number, got {value!r}")
            out[name] = float(value)
        else:
            if not isinstance(value, str):
                raise EdgegenError(f"{where}: {name} must be a string, got {value!r}")
            out[name] = value
    return out


def preset_names() -> list[str]:
    root = resources.files("edgegen.train") / "presets"
    return sorted(p.name[: -len(".toml")] for p in root.iterdir() if p.name.endswith(".toml"))


def load_preset(name_or_path: str) -> dict[str, Any]:
    """A packaged preset by name, or a TOML file by path; values checked like CLI options."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise EdgegenError(f"preset file {path} does not exist")
        text = path.read_bytes()
        where = f"preset {path}"
    else:
        if name_or_path not in preset_names():
            raise EdgegenError(
                f"unknown preset {name_or_path!r}; choose from {', '.join(preset_names())} "
                "or give a .toml file"
            )
        text = (resources.files("edgegen.train") / "presets" / f"{name_or_path}.toml").read_bytes()
        where = f"preset {name_or_path}"
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise EdgegenError(f"{where} is not valid TOML: {exc}") from None
    return coerce_fields(data, where)


def build_config(preset: str | None, overrides: dict[str, Any]) -> TrainConfig:
    """Defaults < preset < overrides (only options the user actually gave)."""
    values: dict[str, Any] = {}
    if preset is not None:
        values.update(load_preset(preset))
        values["preset"] = preset
    values.update(coerce_fields(overrides, "options"))
    config = TrainConfig(**values)
    config.validate()
    return config
