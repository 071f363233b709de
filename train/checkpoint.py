"""Checkpoints: safetensors weights plus JSON (config, spec, optimizer/scheduler/RNG state, step,
metrics). Never a pickle.

``RUN/<name>.safetensors`` is self-contained: the model's weights under their state_dict names,
the optimizer's tensors under ``__optim__.`` (last checkpoint only), with ``--ema`` the weights
being trained under ``__train__.`` (last checkpoint only; the names without a prefix then hold
their moving average, the model the run validated) and the whole JSON record in the safetensors
metadata. It is written to a temporary name and renamed, so it is always either
the previous complete checkpoint or the new complete one. ``RUN/<name>.json`` is the same record
for people and tools (jq); it is written after the weights, and loading trusts the safetensors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.files import atomic_write, atomic_write_text

FORMAT = "edgegen.checkpoint"
FORMAT_VERSION = 1
META_KEY = "edgegen"
OPTIM_PREFIX = "__optim__."
TRAIN_PREFIX = "__train__."
RNG_KEY = "__rng__.torch"


@dataclass
class Checkpoint:
    path: Path
    record: dict[str, Any]
    weights: dict[str, torch.Tensor]
    optimizer_tensors: dict[str, torch.Tensor]
    torch_rng: torch.Tensor | None
    train_weights: dict[str, torch.Tensor] | None = None  # --ema: the weights being trained

    @property
    def step(self) -> int:
        return int(self.record["step"])


def save_checkpoint(
    run: Path,
    name: str,
    record: dict[str, Any],
    model_state: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any] | None = None,
    train_state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``run/name.safetensors`` and ``run/name.json`` atomically; returns the weights path.

    ``model_state`` is the model the run stands for; ``train_state``, with ``--ema``, the weights
    the optimiser moves (which ``model_state`` averages)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model_state.items()}
    if train_state is not None:
        tensors.update(
            {TRAIN_PREFIX + k: v.detach().to("cpu").contiguous() for k, v in train_state.items()}
        )
    record = dict(record, format=FORMAT, format_version=FORMAT_VERSION)
    if optimizer_state is not None:
        flat, groups = _flatten_optimizer(optimizer_state)
        tensors.update(flat)
        record["optimizer"] = {"param_groups": groups}
        tensors[RNG_KEY] = torch.get_rng_state()
    text = json.dumps(record, indent=2, sort_keys=True, default=_json_default)
    path = run / f"{name}.safetensors"

    def write(tmp: Path) -> None:
        from safetensors import SafetensorError

        try:
            save_file(tensors, str(tmp), metadata={META_KEY: text})
        except SafetensorError as exc:  # how safetensors reports a failed write (a full disk)
            raise EdgegenError(f"cannot write checkpoint {path}: {exc}") from None

    atomic_write(path, write)
    atomic_write_text(run / f"{name}.json", text + "\n")
    return path


def resolve(path: str | Path, prefer: str = "best") -> Path:
    """A run folder -> its ``prefer`` (or other) checkpoint; a .safetensors file -> itself."""
    p = Path(path)
    if p.is_dir():
        for name in (prefer, "last" if prefer == "best" else "best"):
            candidate = p / f"{name}.safetensors"
            if candidate.is_file():
                return candidate
        raise EdgegenError(f"{p} holds no checkpoint (no best.safetensors or last.safetensors)")
    if p.suffix == ".json" and p.with_suffix(".safetensors").is_file():
        return p.with_suffix(".safetensors")
    if not p.exists():
        raise EdgegenError(f"checkpoint {p} does not exist")
    return p


def load_checkpoint(path: str | Path, prefer: str = "best") -> Checkpoint:
    from safetensors import SafetensorError, safe_open

    p = resolve(path, prefer)
    try:
        with safe_open(str(p), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - not a dict
    except (SafetensorError, OSError, ValueError) as exc:
        raise EdgegenError(f"{p} is not a readable safetensors checkpoint: {exc}") from None
    if META_KEY not in meta:
        raise EdgegenError(f"{p} is not an edgegen checkpoint (no '{META_KEY}' metadata)")
    try:
        record = json.loads(meta[META_KEY])
    except json.JSONDecodeError as exc:
        raise EdgegenError(f"{p}: checkpoint metadata is not valid JSON: {exc}") from None
    if record.get("format") != FORMAT or record.get("format_version", 0) > FORMAT_VERSION:
        raise EdgegenError(f"{p}: unsupported checkpoint format {record.get('format')!r}")
    weights = {k: v for k, v in tensors.items() if not k.startswith("__")}
    optim = {k[len(OPTIM_PREFIX) :]: v for k, v in tensors.items() if k.startswith(OPTIM_PREFIX)}
    trained = {k[len(TRAIN_PREFIX) :]: v for k, v in tensors.items() if k.startswith(TRAIN_PREFIX)}
    return Checkpoint(p, record, weights, optim, tensors.get(RNG_KEY), trained or None)


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[Any]]:
    flat: dict[str, torch.Tensor] = {}
    for index, per_param in state["state"].items():
        for key, value in per_param.items():
            tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            flat[f"{OPTIM_PREFIX}{index}.{key}"] = tensor.detach().to("cpu").contiguous()
    return flat, state["param_groups"]


def optimizer_state_from(ckpt: Checkpoint) -> dict[str, Any]:
    """Rebuild ``optimizer.state_dict()`` from a checkpoint written by :func:`save_checkpoint`."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in ckpt.optimizer_tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = tensor
    return {"state": state, "param_groups": ckpt.record["optimizer"]["param_groups"]}


def _json_default(value: Any) -> Any:
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_model(path: str | Path, prefer: str = "best") -> tuple[Any, Any, Checkpoint]:
    """The network a checkpoint holds, rebuilt from its spec alone: ``(model, spec, checkpoint)``.

    ``model`` is one of edgegen's architectures (:data:`~edgegen.train.archs.FAMILIES`) in
    eval mode on the CPU and ``spec`` its :class:`~edgegen.runtime.spec.ModelSpec`; every
    failure is one :class:`EdgegenError` naming the file.
    """
    from edgegen.runtime.spec import ModelSpec

    from .archs import FAMILIES, from_spec

    ckpt = load_checkpoint(path, prefer=prefer)
    if "spec" not in ckpt.record:
        raise EdgegenError(f"{ckpt.path}: checkpoint has no model spec")
    spec = ModelSpec.from_dict(ckpt.record["spec"])
    if spec.arch not in FAMILIES:
        raise EdgegenError(f"{ckpt.path}: unknown architecture {spec.arch!r}")
    try:
        model = from_spec(spec.arch, spec.arch_params)
        model.load_state_dict(ckpt.weights)
    except (TypeError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise EdgegenError(
            f"{ckpt.path}: weights do not match the spec's architecture: {first}"
        ) from None
    return model.eval().float().cpu(), spec, ckpt


def load_runner(
    path: str | Path, prefer: str = "best", name: str | None = None, channels_last: bool = False
) -> Any:
    """The checkpoint's network as a :class:`~edgegen.runners.pytorch.TorchRunner` (named after
    the checkpoint file): the PyTorch reference of comparisons and benchmarks."""
    from edgegen.runners.pytorch import TorchRunner

    model, spec, ckpt = load_model(path, prefer=prefer)
    return TorchRunner(model, spec, name or ckpt.path.name, ckpt.path, channels_last=channels_last)
