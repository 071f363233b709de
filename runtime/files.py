"""Files written safely: to a temporary name beside the target, then renamed into place.

A crash (even SIGKILL) therefore never leaves a half file under the real name. Pure Python, so
the runtime can use it as well as training and export.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import EdgegenError

# Names longer than this leave no room in a 255-byte file name for the temporary's additions.
_NAME_BYTES = 255
TEMP_MARK = ".edgegen-"  # in every temporary's name: only such files are ever removed
_TEMP_SUFFIX = ".tmp"


def temp_beside(path: Path) -> Path:
    """A new empty file ``.NAME.edgegen-XXXXXXXX.tmp`` beside ``path`` (NAME shortened when the
    whole would pass the 255-byte name limit), with the permissions a normal file gets (mkstemp
    makes 0600); :func:`remove_stale_temps` removes only this pattern."""
    room = _NAME_BYTES - len(f".{TEMP_MARK}XXXXXXXX{_TEMP_SUFFIX}".encode())
    name = path.name.encode("utf-8", "surrogateescape")[:room].decode("utf-8", "ignore")
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{name}{TEMP_MARK}", suffix=_TEMP_SUFFIX, dir=path.parent
    )
    os.close(fd)
    os.chmod(tmp_name, 0o666 & ~_umask())
    return Path(tmp_name)


def is_special(path: Path) -> bool:
    """True when ``path`` exists and is not a regular file or folder: a device (``/dev/null``),
    a FIFO, a socket. Such a target is written in place: renaming over it would replace it."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, rename it into place.

    A symlink is followed (its target is replaced, the link kept); a device or FIFO
    (``--json /dev/stdout``) is written in place, as a stream."""
    if is_special(path):
        write(path)
        return
    if path.is_symlink():
        path = Path(os.path.realpath(path))
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


def is_own_temp(path: Path) -> bool:
    """Whether ``path`` is named as :func:`temp_beside` names its files."""
    name = path.name
    if not (name.startswith(".") and name.endswith(_TEMP_SUFFIX)):
        return False
    stem = name[: -len(_TEMP_SUFFIX)]
    head, mark, rand = stem.rpartition(TEMP_MARK)
    return bool(mark) and len(head) > 1 and len(rand) == 8 and rand.isascii()


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temporary files that :func:`atomic_write` left when its process was killed.

    Only names of its own pattern (``.NAME.edgegen-XXXXXXXX.tmp``) are touched, never a user's
    ``.notes.tmp``; call it while holding the folder's :func:`folder_lock`, so that no other
    edgegen process is writing there.
    """
    stale = [p for p in folder.glob(f".*{TEMP_MARK}*{_TEMP_SUFFIX}") if is_own_temp(p)]
    stale = [p for p in stale if p.is_file() and not p.is_symlink()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def remove_temps_of(targets: Iterable[Path]) -> list[Path]:
    """Delete the temporaries :func:`atomic_write` left beside ``targets`` when a process
    writing one of them was killed (a cluster worker lost mid-write): only this pattern, and
    only for these names (a name cut short in the temporary matches by its start)."""
    names: dict[Path, list[str]] = {}
    for target in targets:
        names.setdefault(target.parent, []).append(target.name)
    removed = []
    for folder, wanted in names.items():
        for path in folder.glob(f".*{TEMP_MARK}*{_TEMP_SUFFIX}"):
            if not is_own_temp(path) or path.is_symlink() or not path.is_file():
                continue
            head = path.name[1 : -len(_TEMP_SUFFIX)].rpartition(TEMP_MARK)[0]
            if any(name.startswith(head) for name in wanted):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def not_a_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as a regular file, as the end of a sentence ("no such file",
    "is a FIFO (named pipe), not a file", ...), or None when it can be. Reading a FIFO would
    block for ever and a device has no end, so both are refused before anything opens them."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "is a broken symlink" if os.path.islink(path) else "no such file"
    except PermissionError:
        return "permission denied"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symlink loop"
        return str(exc.strerror or exc)
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (named pipe), not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a file"
    return "is not a regular file"  # pragma: no cover - no other kinds on Linux


def check_file(path: Path, what: str) -> None:
    """Raise one :class:`EdgegenError` (``"model m.onnx is a FIFO ..."``) unless ``path`` is a
    regular file that this process may read."""
    reason = not_a_file(path)
    if reason is None and not os.access(path, os.R_OK):
        reason = "permission denied"
    if reason is not None:
        sep = ":" if reason in ("no such file", "permission denied") else ""
        raise EdgegenError(f"{what} {path}{sep} {reason}")


class FolderBusy(EdgegenError):
    """Another process holds the folder's lock."""


@contextlib.contextmanager
def folder_lock(folder: Path, what: str = "output folder") -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` while writing into it; a second edgegen process
    that wants the same folder is refused at once with one line.

    The lock is ``flock`` on the folder itself (no lock file is created, and the kernel drops
    it when the process dies, even by SIGKILL). Where ``fcntl`` does not exist (Windows) it is
    a no-op."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusy(
                f"{what} {folder} is in use by another edgegen process; wait for it to finish "
                "or choose another folder"
            ) from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


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
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        raise EdgegenError(f"{what}{path} is unreadable: {reason}") from None
    if not isinstance(data, dict):
        raise EdgegenError(f"{what}{path} is not a JSON object")
    return data
