"""The export manifest's sha256, checked when a model is loaded.

Export writes ``model.<precision>.manifest.json`` beside ``model.<precision>.onnx`` (and its
``.ort``) with each file's sha256. A model whose bytes no longer match was changed after export
(a bad copy, a partial download, tampering), so loading it is refused unless the caller opts out.
A model without a manifest beside it (a user's own ONNX) is loaded as it is. Pure Python.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import EdgegenError
from .files import sha256_file


def manifest_path(model: Path) -> Path:
    """``DIR/model.fp32.onnx`` (or ``.ort``) -> ``DIR/model.fp32.manifest.json``."""
    return model.with_name(f"{model.stem}.manifest.json")


def check_manifest(model: Path) -> str | None:
    """Check ``model`` against the manifest beside it; return the verified sha256, or None when
    there is no manifest. Raises :class:`EdgegenError` (one line) when the manifest is unreadable
    or names another sha256."""
    path = manifest_path(model)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EdgegenError(f"manifest {path} is unreadable: {_first_line(exc)}") from None
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


def _expected_sha256(data: Any, name: str) -> str | None:
    """The manifest entry for the file called ``name``: the model itself or its ``ort`` copy; a
    renamed model falls back to the manifest's main entry."""
    if not isinstance(data, dict):
        return None
    entries = [data] + [v for v in data.values() if isinstance(v, dict) and "file" in v]
    for entry in entries:
        if entry.get("file") == name and isinstance(entry.get("sha256"), str):
            return str(entry["sha256"])
    main = data.get("sha256")
    return main if isinstance(main, str) else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
