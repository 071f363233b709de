"""The pretrained models that ship inside the package (``edgegen.models``), torch-free.

Each shipped model is a folder of ``edgegen.models``: export's ``model.<precision>.onnx`` with
its manifest and golden samples, a model card (``README.md``) and ``metrics.json`` (what the
card's numbers were measured as, by ``benchmarks/shipped_models.py``). Files are found through
:mod:`importlib.resources`, so they work from an installed wheel as from a checkout.

``edgegen models`` lists them; ``edgegen run photo.jpg -o out/`` uses :data:`DEFAULT_MODEL`, and
``--model NAME[:PRECISION]`` any of them (:func:`resolve`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import EdgegenError
from .files import read_json_object
from .manifest import read_manifest

DEFAULT_MODEL = "denoise-blind"
# int8 is the edge default: 2.5x faster than fp32 on a CPU for ~0.1 dB (see its model card).
DEFAULT_PRECISION = "int8"
MODEL_SUFFIXES = (".onnx", ".ort")


@dataclass(frozen=True)
class ShippedModel:
    name: str  # the folder's name, e.g. denoise-blind
    precision: str
    path: Path
    task: str
    scale: int
    size_bytes: int
    sha256: str
    description: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # metric key -> how to print it
    card: Path | None = None

    @property
    def ref(self) -> str:
        """How ``--model`` names it."""
        return f"{self.name}:{self.precision}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "precision": self.precision,
            "path": str(self.path),
            "task": self.task,
            "scale": self.scale,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "description": self.description,
            "metrics": self.metrics,
            "card": str(self.card) if self.card else None,
        }


def models_root() -> Path:
    """The folder of ``edgegen.models`` (a plain folder in a wheel or an editable install)."""
    return Path(str(resources.files("edgegen.models")))


def shipped_models(root: Path | None = None) -> list[ShippedModel]:
    """Every shipped model x precision, by name then precision, read from the manifests."""
    root = models_root() if root is None else root
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        info = (
            read_json_object(folder / "metrics.json") if (folder / "metrics.json").is_file() else {}
        )
        card = folder / "README.md"
        for manifest_file in sorted(folder.glob("model.*.manifest.json")):
            manifest = read_manifest(manifest_file)
            try:
                spec = manifest["spec"]
                precision = str(manifest["precision"])
                model = ShippedModel(
                    name=folder.name,
                    precision=precision,
                    path=_inside(folder, str(manifest["file"]), manifest_file),
                    task=str(spec["task"]),
                    scale=int(spec.get("scale", 1)),
                    size_bytes=int(manifest["size_bytes"]),
                    sha256=str(manifest["sha256"]),
                    description=str(info.get("description", "")),
                    metrics={
                        k: float(v)
                        for k, v in info.get("precisions", {}).get(precision, {}).items()
                    },
                    labels={k: str(v) for k, v in info.get("labels", {}).items()},
                    card=card if card.is_file() else None,
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise EdgegenError(f"manifest {manifest_file} is malformed: {exc!r}") from None
            found.append(model)
    return found


def _inside(folder: Path, name: str, manifest: Path) -> Path:
    """``folder/name``, refused unless it is a file of ``folder`` itself: a manifest (edited,
    or of a broken install) must not send ``--model NAME`` to a file elsewhere."""
    path = folder / name
    plain = name not in ("", ".", "..") and Path(name).name == name and "\\" not in name
    if not plain or not path.resolve().is_relative_to(folder.resolve()):
        raise EdgegenError(f"manifest {manifest} names a file outside its folder ({name!r})")
    return path


def resolve(name: str, root: Path | None = None) -> Path:
    """``NAME`` (its default precision) or ``NAME:PRECISION`` -> the shipped ONNX file."""
    base, _, precision = name.partition(":")
    models = shipped_models(root)
    same_name = [m for m in models if m.name == base]
    if not same_name:
        names = ", ".join(sorted({m.name for m in models})) or "none are installed"
        raise EdgegenError(f"unknown model {name!r}: not a file, nor a shipped model ({names})")
    wanted = precision or (
        DEFAULT_PRECISION
        if any(m.precision == DEFAULT_PRECISION for m in same_name)
        else same_name[0].precision
    )
    for m in same_name:
        if m.precision == wanted:
            return m.path
    have = ", ".join(m.ref for m in same_name)
    raise EdgegenError(f"shipped model {base} has no {wanted} precision (have {have})")
