"""The export manifest format: written beside every artifact, checked when a model is loaded.

``model.<precision>.manifest.json`` sits beside ``model.<precision>.onnx`` (and its ``.ort``):
the model's ``file``, ``sha256``, ``size_bytes``, ``precision`` and ``spec``, the ``golden`` and
``ort`` files as ``{"file", "sha256"}`` entries, and what export records about how it was made
(versions, calibration, verification). :func:`write_manifest` writes it, :func:`read_manifest`
reads it and :func:`check_manifest` refuses a model whose bytes no longer match (a bad copy, a
partial download, tampering) unless the caller opts out. A model without a manifest beside it
(a user's own ONNX) is loaded as it is. Pure Python.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import EdgegenError
from .files import read_json_object, sha256_file

REQUIRED = ("file", "sha256", "size_bytes", "precision", "spec")


def manifest_path(model: Path) -> Path:
    """``DIR/model.fp32.onnx`` (or ``.ort``) -> ``DIR/model.fp32.manifest.json``."""
    return model.with_name(f"{model.stem}.manifest.json")


def file_entry(name: str, path: Path) -> dict[str, str]:
    """A manifest entry for a file that travels with the model: its final name, its sha256."""
    return {"file": name, "sha256": sha256_file(path)}


def write_manifest(path: Path, model_name: str, model: Path, fields: Mapping[str, Any]) -> None:
    """Write the manifest of ``model`` (its bytes may sit under a temporary name; ``model_name``
    is the name it will have) to ``path``, with ``fields`` after the model's own entries."""
    data: dict[str, Any] = {
        "file": model_name,
        "sha256": sha256_file(model),
        "size_bytes": model.stat().st_size,
        **fields,
    }
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise ValueError(f"a manifest needs {', '.join(missing)}")
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def read_manifest(path: Path) -> dict[str, Any]:
    """A manifest's JSON object; an unreadable or malformed file is one :class:`EdgegenError`."""
    return read_json_object(path, "manifest ")


def check_manifest(model: Path) -> str | None:
    """Check ``model`` against the manifest beside it; return the verified sha256, or None when
    there is no manifest. Raises :class:`EdgegenError` (one line) when the manifest is unreadable
    or names another sha256."""
    path = manifest_path(model)
    if not path.is_file():
        return None
    data = read_manifest(path)
    expected = _expected_sha256(data, model.name)
    if expected is None:
        raise EdgegenError(f"manifest {path} has no sha256 for {model.name}")
    actual = sha256_file(model)
    if actual != expected:
        raise EdgegenError(
            f"model {model}: sha256 {actual[:12]}... does not match its manifest {path.name} "
            f"({expected[:12]}...): the file changed after export; re-export it, or skip the "
            "check (--no-verify, Generator(verify_manifest=False))"
        )
    return actual


def _expected_sha256(data: dict[str, Any], name: str) -> str | None:
    """The manifest entry for the file called ``name``: the model itself or its ``ort`` copy; a
    renamed model falls back to the manifest's main entry."""
    entries = [data] + [v for v in data.values() if isinstance(v, dict) and "file" in v]
    for entry in entries:
        if entry.get("file") == name and isinstance(entry.get("sha256"), str):
            return str(entry["sha256"])
    main = data.get("sha256")
    return main if isinstance(main, str) else None
