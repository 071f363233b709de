"""Networks of the restoration ecosystem: a state dict of a known architecture, detected from its
keys by spandrel (the loader behind chaiNNer and ComfyUI), becomes a module and a spec.

Weights are read without unpickling code: ``.safetensors`` with safetensors, ``.pth``/``.pt``/
``.ckpt`` with ``torch.load(weights_only=True)``. The spec (task, scale, channels, pad multiple)
comes from spandrel's description of the model; what it cannot know, the degradation the model
undoes, is the caller's (``edgegen export --degradation``), with a default per task.

spandrel's registry imports torchvision for two architectures (LaMa, RestoreFormer). Where
torchvision is missing or does not import beside the installed torch (PyPI's torchvision against
a CPU-only torch build), :func:`import_spandrel` imports spandrel with a stand-in torchvision
whose functions raise one line when called, so every other architecture loads.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.spec import ModelSpec, Provenance

WEIGHT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")
INSTALL_HINT = "pip install 'edgegen[ecosystem]' (spandrel, einops)"
# torchvision's modules that spandrel's registry imports (for LaMa and RestoreFormer only).
_TORCHVISION_MODULES = (
    "torchvision",
    "torchvision.transforms",
    "torchvision.transforms.functional",
)
# spandrel's purposes that are image-to-image restoration edgegen can run on any image size.
_PURPOSES = ("SR", "Restoration")
# spandrel architectures whose call adds a noise-level map as an extra input channel; spandrel's
# own call builds it for a batch of one, so the wrapper builds it for any batch.
_NOISE_MAP_ARCHS = ("DRUNet", "DnCNN")


class _Unavailable:
    """A torchvision function in the stand-in module: using it is one clear line."""

    def __init__(self, name: str) -> None:
        self._name = name

    def _fail(self) -> EdgegenError:
        return EdgegenError(
            f"this architecture needs torchvision ({self._name}), which does not import beside "
            f"torch {torch.__version__}: install the torchvision built for this torch"
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise self._fail()

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise self._fail()


class _StandIn(types.ModuleType):
    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Unavailable(f"{self.__name__}.{attr}")


def _torchvision_imports() -> str | None:
    """None when torchvision imports; else why not (and its half-imported modules removed)."""
    try:
        importlib.import_module("torchvision.transforms.functional")
        return None
    except Exception as exc:  # ModuleNotFoundError, or RuntimeError from a mismatched build
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def import_spandrel() -> Any:
    """spandrel, imported beside a torchvision stand-in when the real one does not import."""
    if "spandrel" in sys.modules:
        return sys.modules["spandrel"]
    for name in ("spandrel", "einops"):
        if importlib.util.find_spec(name) is None:
            raise EdgegenError(
                f"loading a state dict needs {name}, which is not installed: {INSTALL_HINT}"
            )
    stand_in = _torchvision_imports() is not None
    if stand_in:
        for name in _TORCHVISION_MODULES:
            sys.modules[name] = _StandIn(name)
        tv, transforms = sys.modules["torchvision"], sys.modules["torchvision.transforms"]
        tv.transforms = transforms  # type: ignore[attr-defined]
        transforms.functional = sys.modules["torchvision.transforms.functional"]  # type: ignore[attr-defined]
    try:
        return importlib.import_module("spandrel")
    except ImportError as exc:
        raise EdgegenError(f"spandrel does not import: {exc}") from None
    finally:
        # spandrel's modules hold the stand-in's functions now; others (torch.onnx looks for
        # torchvision's operators) must see no torchvision at all.
        if stand_in:
            for name in _TORCHVISION_MODULES:
                sys.modules.pop(name, None)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, never unpickling code; one line for every failure."""
    p = Path(path)
    if not p.is_file():
        raise EdgegenError(
            f"weights file {p} does not exist" if not p.exists() else f"{p} is not a file"
        )
    if p.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(p)))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise EdgegenError(f"{p} is not a readable safetensors file: {first}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Detected pickle protocol 4 ...": refused below
            loaded = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError, EOFError, zipfile errors, RuntimeError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise EdgegenError(
                f"{p} holds pickled Python objects, not only tensors; edgegen loads weights with "
                f"torch.load(weights_only=True) and never unpickles code: save the model's "
                f"state_dict() instead"
            ) from None
        raise EdgegenError(f"{p} is not a readable PyTorch weights file: {first}") from None
    return _tensors_of(loaded, p)


def _tensors_of(loaded: Any, path: Path) -> dict[str, torch.Tensor]:
    """A state dict from what torch.load gave: a dict of tensors, or one nested under the usual
    keys of training frameworks ("params_ema", "state_dict", "model", ...)."""
    if isinstance(loaded, dict):
        tensors = {k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
        if tensors and len(tensors) * 2 >= len(loaded):
            return {str(k): v for k, v in tensors.items()}
        for key in ("params_ema", "params", "state_dict", "model", "net", "network", "generator"):
            if isinstance(loaded.get(key), dict):
                return _tensors_of(loaded[key], path)
    raise EdgegenError(f"{path} holds no state dict (a mapping of names to tensors)")


@dataclass
class LoadedNetwork:
    """A network ready to export: the module (NCHW float in, NCHW float out, as ``spec`` says),
    its spec, and what the loader reported about it."""

    module: nn.Module
    spec: ModelSpec
    architecture: str
    notes: dict[str, Any] = field(default_factory=dict)


class SpandrelNetwork(nn.Module):
    """spandrel's model behind edgegen's contract: ``forward(x)`` with x in [0, 1], NCHW, of any
    batch, height and width the spec's pad multiple allows (spandrel's own call pads and assumes a
    batch of one; edgegen's runtime pads)."""

    def __init__(self, descriptor: Any, noise_level: float | None = None) -> None:
        super().__init__()
        self.model = descriptor.model
        self.arch_id = str(descriptor.architecture.id)
        self._call_fn = descriptor._call_fn  # spandrel's per-architecture call (post-processing)
        self.noise_level = noise_level

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.noise_level is not None:
            level = torch.full_like(x[:, :1], self.noise_level)
            return self.model(torch.cat([x, level], dim=1))  # type: ignore[no-any-return]
        return self._call_fn(self.model, x)  # type: ignore[no-any-return]


def default_degradation(task: str, scale: int) -> dict[str, Any]:
    """What a model of ``task`` is verified on when the caller names no degradation."""
    if task == "sr":
        return {"kind": "bicubic_downscale", "scale": scale}
    if task == "jpeg":
        return {"kind": "jpeg", "quality": 30.0}
    return {"kind": "gaussian_noise", "sigma": 25.0}


def load_state_dict_network(
    path: str | Path,
    task: str | None = None,
    degradation: dict[str, Any] | None = None,
) -> LoadedNetwork:
    """The network a state-dict file holds, detected by spandrel, with its spec."""
    from edgegen.runtime.files import sha256_file

    p = Path(path)
    state = read_state_dict(p)
    spandrel = import_spandrel()
    try:
        state = spandrel.canonicalize_state_dict(state)
        descriptor = spandrel.MAIN_REGISTRY.load(state)
    except spandrel.UnsupportedModelError:
        raise EdgegenError(
            f"{p}: no known architecture matches its keys (spandrel {spandrel.__version__} "
            f"knows {len(spandrel.MAIN_REGISTRY.architectures())}); for a network of your own "
            f"use --module pkg.module:factory --weights {p.name}"
        ) from None
    except EdgegenError:
        raise
    except Exception as exc:  # a detected architecture whose weights do not build
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgegenError(f"{p}: the weights do not build a known architecture: {first}") from None
    arch = str(descriptor.architecture.id)
    name = str(descriptor.architecture.name)
    purpose = str(descriptor.purpose)
    if purpose not in _PURPOSES:
        kind = "an inpainting model" if purpose == "Inpainting" else f"a {purpose} model"
        raise EdgegenError(
            f"{p}: {name} is {kind}, not an image-to-image generator edgegen exports "
            f"(it needs {'a mask' if purpose == 'Inpainting' else 'aligned fixed-size crops'})"
        )
    req = descriptor.size_requirements
    if req.square:
        raise EdgegenError(f"{p}: {name} runs on square inputs only; edgegen runs any image size")
    scale = int(descriptor.scale)
    if scale not in (1, 2, 3, 4):
        raise EdgegenError(f"{p}: {name} upscales {scale}x; edgegen exports scales 1 to 4")
    channels = (int(descriptor.input_channels), int(descriptor.output_channels))
    if any(c not in (1, 3) for c in channels):
        raise EdgegenError(
            f"{p}: {name} takes {channels[0]} and gives {channels[1]} channels; edgegen "
            f"exports gray (1) and RGB (3) networks"
        )
    task = task or ("sr" if scale > 1 else "denoise")
    described = degradation or default_degradation(task, scale)
    noise_level = None
    if arch in _NOISE_MAP_ARCHS and _has_noise_map(descriptor):
        sigma = described.get("sigma", 15.0) if described.get("kind") == "gaussian_noise" else 15.0
        noise_level = float(sigma[-1] if isinstance(sigma, (list, tuple)) else sigma) / 255.0
    module = SpandrelNetwork(descriptor, noise_level).eval()
    params: dict[str, Any] = {"tags": list(descriptor.tags)}
    if noise_level is not None:
        params["noise_level"] = noise_level
    spec = ModelSpec(
        task=task,
        scale=scale,
        in_channels=channels[0],
        out_channels=channels[1],
        color_order="GRAY" if channels[0] == 1 else "RGB",
        pad_multiple=max(1, int(req.multiple_of)),
        arch=f"spandrel:{arch}",
        arch_params=params,
        degradation=described,
        provenance=Provenance(checkpoint_sha256=sha256_file(p)),
    )
    notes = {
        "loader": f"spandrel {spandrel.__version__}",
        "architecture": name,
        "purpose": purpose,
        "supports_half": bool(descriptor.supports_half),
        "tiling": str(descriptor.tiling.name).lower(),
        "minimum_size": int(req.minimum),
    }
    return LoadedNetwork(module, spec, arch, notes)


def _has_noise_map(descriptor: Any) -> bool:
    """DnCNN comes with and without the noise-level channel: spandrel's inputs say which."""
    first = next((m for m in descriptor.model.modules() if isinstance(m, nn.Conv2d)), None)
    return first is not None and first.in_channels == int(descriptor.input_channels) + 1
