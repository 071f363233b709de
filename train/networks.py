"""The networks export and compare take: an edgegen run or checkpoint, a state dict of a known
architecture (``.pth``, ``.pt``, ``.ckpt``, ``.bin``, ``.safetensors``), or a module of the user's
own (``pkg.module:factory`` with ``--weights FILE``). Each becomes a :class:`Network`: the module,
its spec, and where it came from; every failure is one line.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgegen.runtime.errors import EdgegenError, SpecError
from edgegen.runtime.spec import DEGRADATIONS, ModelSpec, Provenance

from .ecosystem import (
    WEIGHT_SUFFIXES,
    default_degradation,
    load_state_dict_network,
    read_state_dict,
)

# Pad multiples tried, smallest first, for a module of the user's own (a U-Net with n
# downsamplings needs 2**n).
PAD_MULTIPLES = (1, 2, 4, 8, 16, 32, 64)


@dataclass
class Network:
    module: nn.Module
    spec: ModelSpec
    source: Path | None = None  # the file the weights came from
    qat_record: dict[str, Any] | None = None  # an edgegen QAT checkpoint's ranges
    loader: dict[str, Any] = field(default_factory=dict)  # what the loader reported
    train_loss: str | None = None  # the loss an edgegen run trained with (QAT's default)


def parse_degradation(text: str) -> dict[str, Any]:
    """``KIND:KEY=VALUE`` (``gaussian_noise:sigma=25``, ``jpeg:quality=30``,
    ``gaussian_noise:sigma=5-50`` for a range) -> the spec's degradation dict."""
    kinds = ", ".join(f"{k}:{p}=N" for k, p in DEGRADATIONS.items())
    kind, _, rest = text.partition(":")
    key, _, value = rest.partition("=")
    if kind not in DEGRADATIONS or key != DEGRADATIONS[kind]:
        raise EdgegenError(f"--degradation {text!r}: use one of {kinds}")
    try:
        low, dash, high = value.partition("-")
        parsed: Any = [float(low), float(high)] if dash else float(value)
        if key == "scale":
            parsed = int(value)
        return ModelSpec(task="denoise", degradation={"kind": kind, key: parsed}).degradation
    except (ValueError, SpecError):
        raise EdgegenError(
            f"--degradation {text!r}: {key} must be a number, e.g. {kinds}"
        ) from None


def load_network(
    source: str | Path | None,
    module: str | None = None,
    weights: str | Path | None = None,
    task: str | None = None,
    degradation: dict[str, Any] | None = None,
    pad_multiple: int | None = None,
) -> Network:
    """What ``source`` (or ``module`` with ``weights``) holds, ready to export or compare."""
    if module is not None:
        if source is not None:
            raise EdgegenError("give either a checkpoint or --module, not both")
        return load_user_module(module, weights, task, degradation, pad_multiple)
    if weights is not None:
        raise EdgegenError("--weights goes with --module pkg.module:factory")
    if source is None:
        raise EdgegenError("name a run folder, a checkpoint or a weights file, or use --module")
    p = Path(source)
    if not p.exists():
        raise EdgegenError(f"checkpoint {p} does not exist")
    if p.is_dir() or p.suffix == ".json" or _is_edgegen_checkpoint(p):
        if task or degradation or pad_multiple:
            raise EdgegenError("--task, --degradation and --pad-multiple come from the checkpoint")
        return _edgegen(p)
    if p.suffix.lower() in WEIGHT_SUFFIXES:
        loaded = load_state_dict_network(p, task, degradation)
        spec = loaded.spec
        if pad_multiple is not None:
            spec = spec.replace(pad_multiple=pad_multiple)
        return Network(loaded.module, spec, p, None, loaded.notes)
    raise EdgegenError(
        f"{p} is not a run folder, an edgegen checkpoint or a weights file "
        f"({', '.join(WEIGHT_SUFFIXES)})"
    )


def _is_edgegen_checkpoint(path: Path) -> bool:
    """A .safetensors with edgegen's metadata (else it is a plain state dict)."""
    if path.suffix != ".safetensors":
        return False
    from safetensors import SafetensorError, safe_open

    from .checkpoint import META_KEY

    try:
        with safe_open(str(path), framework="pt") as fh:
            return META_KEY in (fh.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise EdgegenError(f"{path} is not a readable safetensors checkpoint: {exc}") from None


def _edgegen(path: Path) -> Network:
    from edgegen.runtime.files import sha256_file

    from .checkpoint import load_model

    model, spec, ckpt = load_model(path, prefer="best")
    metrics = {
        k: float(v)
        for k, v in ckpt.record.get("metrics", {}).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None
    }
    provenance = dataclasses.replace(
        spec.provenance, checkpoint_sha256=sha256_file(ckpt.path), step=ckpt.step, metrics=metrics
    )
    loss = ckpt.record.get("config", {}).get("loss")
    return Network(
        model,
        spec.replace(provenance=provenance),
        ckpt.path,
        ckpt.record.get("qat"),
        train_loss=str(loss) if loss else None,
    )


def load_user_module(
    target: str,
    weights: str | Path | None,
    task: str | None = None,
    degradation: dict[str, Any] | None = None,
    pad_multiple: int | None = None,
) -> Network:
    """``pkg.module:factory`` (or ``path/to/file.py:factory``) called with no arguments, its
    weights loaded strictly from ``weights``; the spec found by running it."""
    from edgegen.runtime.files import sha256_file

    factory = _import_factory(target)
    try:
        module = factory()
    except Exception as exc:  # the user's code: any error is "the factory failed"
        raise EdgegenError(f"--module {target}: calling it failed: {_first(exc)}") from None
    if not isinstance(module, nn.Module):
        raise EdgegenError(
            f"--module {target} returned {type(module).__name__}, not a torch nn.Module"
        )
    source = None
    if weights is not None:
        source = Path(weights)
        state = read_state_dict(source)
        try:
            module.load_state_dict(state, strict=True)
        except (RuntimeError, ValueError) as exc:
            raise EdgegenError(
                f"{source} does not match --module {target}: {_first(exc)}"
            ) from None
    module = module.eval().float().cpu()
    spec = _spec_of(module, target, task, degradation, pad_multiple)
    if source is not None:
        spec = spec.replace(provenance=Provenance(checkpoint_sha256=sha256_file(source)))
    return Network(module, spec, source, None, {"module": target})


def _import_factory(target: str) -> Any:
    name, colon, attr = target.rpartition(":")
    if not colon or not name or not attr.isidentifier():
        raise EdgegenError(f"--module {target!r}: use pkg.module:factory or file.py:factory")
    try:
        if name.endswith(".py"):
            path = Path(name)
            if not path.is_file():
                raise EdgegenError(f"--module {target}: {path} does not exist")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            assert spec is not None and spec.loader is not None
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
        else:
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))  # as `python -m` finds the user's modules
            mod = importlib.import_module(name)
    except EdgegenError:
        raise
    except Exception as exc:  # ImportError, or whatever the module raises as it runs
        raise EdgegenError(f"--module {target}: cannot import {name}: {_first(exc)}") from None
    factory = getattr(mod, attr, None)
    if factory is None:
        raise EdgegenError(f"--module {target}: {name} has no {attr!r}")
    if not callable(factory):
        raise EdgegenError(f"--module {target}: {attr} is {type(factory).__name__}, not callable")
    return factory


def _spec_of(
    module: nn.Module,
    target: str,
    task: str | None,
    degradation: dict[str, Any] | None,
    pad_multiple: int | None,
) -> ModelSpec:
    """The spec the module states (an ``edgegen_spec`` attribute), else the one its outputs
    show: input channels from its first convolution, pad multiple, scale and output channels
    from running it."""
    stated = getattr(module, "edgegen_spec", None)
    if stated is not None:
        try:
            spec = stated if isinstance(stated, ModelSpec) else ModelSpec.from_dict(stated)
        except SpecError as exc:
            raise EdgegenError(f"--module {target}: its edgegen_spec: {exc}") from None
        return spec
    first = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
    in_channels = first.in_channels if first is not None and first.in_channels in (1, 3) else 3
    multiples = (pad_multiple,) if pad_multiple else PAD_MULTIPLES
    failure = ""
    for pm in multiples:
        found, failure = _runs_at(module, in_channels, pm)
        if found is not None:
            scale, out_channels = found
            break
    else:
        raise EdgegenError(f"--module {target}: the output is not an image: {failure}")
    task = task or ("sr" if scale > 1 else "denoise")
    try:
        return ModelSpec(
            task=task,
            scale=scale,
            in_channels=in_channels,
            out_channels=out_channels,
            color_order="GRAY" if in_channels == 1 else "RGB",
            pad_multiple=pm,
            arch=f"module:{target}",
            degradation=degradation or default_degradation(task, scale),
        )
    except SpecError as exc:
        raise EdgegenError(f"--module {target}: {exc}") from None


def _runs_at(module: nn.Module, channels: int, pm: int) -> tuple[tuple[int, int] | None, str]:
    """((scale, output channels), "") when the module maps images of sizes that are multiples
    of ``pm`` (two of them, an odd number of blocks and an even one) to images; else why not."""
    seen = None
    h0, w0 = -(-37 // pm) * pm, -(-53 // pm) * pm
    for h, w in ((h0, w0), (h0 + pm, w0 + pm)):
        x = torch.rand(1, channels, h, w)
        try:
            with torch.no_grad():
                y = module(x)
        except Exception as exc:  # the user's forward
            return None, f"it fails on a 1x{channels}x{h}x{w} input: {_first(exc)}"
        if not isinstance(y, torch.Tensor) or y.ndim != 4:
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            return None, f"it returns {got} for a 1x{channels}x{h}x{w} input, not an NCHW image"
        s = y.shape[2] // h
        if y.shape[0] != 1 or s < 1 or y.shape[2] != h * s or y.shape[3] != w * s:
            return None, f"it returns {tuple(y.shape)} for a 1x{channels}x{h}x{w} input"
        if y.shape[1] not in (1, 3):
            return None, f"it returns {y.shape[1]} channels; edgegen exports 1 or 3"
        if seen is not None and seen != (s, y.shape[1]):
            return None, "its scale changes with the input size"
        seen = (s, int(y.shape[1]))
    return seen, ""


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
