"""Files written safely: to a temporary name beside the target, then renamed into place.

A crash (even SIGKILL) therefore never leaves a half file under the real name. Pure Python, so
the runtime can use it as well as training and export.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import EdgegenError


def temp_beside(path: Path) -> Path:
    """A new empty file ``.NAME.XXXXXXXX.tmp`` beside ``path``, with the permissions a normal
    file gets (mkstemp makes 0600); :func:`remove_stale_temps` knows the pattern."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp_name, 0o666 & ~_umask())
    return Path(tmp_name)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(path)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temporary files that :func:`atomic_write` left when its process was killed.

    Only names of its own pattern (``.NAME.XXXXXXXX.tmp``) are touched; call it when no other
    process writes to ``folder``.
    """
    stale = [p for p in folder.glob(".*.tmp") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    atomic_write(path, write)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json_object(path: Path, what: str = "") -> dict[str, Any]:
    """The JSON object in ``path``; unreadable, malformed or not an object is one
    :class:`EdgegenError` naming ``what`` (e.g. "manifest ") and the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        raise EdgegenError(f"{what}{path} is unreadable: {reason}") from None
    if not isinstance(data, dict):
        raise EdgegenError(f"{what}{path} is not a JSON object")
    return data
