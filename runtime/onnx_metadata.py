"""An ONNX file's ``metadata_props``, read from the file without onnx and without a session.

The runtime must know a model's spec before it opens the session: on CUDA the session options
depend on the model's precision (:meth:`SessionConfig.for_precision`), and a session opened to
read the spec would have to be opened again. ``metadata_props`` is field 14 of the top-level
``ModelProto`` message, a list of ``(key = 1, value = 2)`` string pairs; the protobuf wire format
lets a reader skip every other field by its length, so only a few bytes of a large model are
read. Pure Python; anything unexpected gives None, and the session's own metadata is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

_METADATA_FIELD = 14
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
_MAX_ENTRY = 1 << 24  # a metadata entry larger than 16 MB is not a spec


class _Malformed(Exception):
    pass


def read_metadata(path: Path) -> dict[str, str] | None:
    """The model's metadata_props, or None when ``path`` is not a protobuf ONNX file (an ORT
    format model, say) or cannot be read."""
    if path.suffix.lower() == ".ort":
        return None  # a flatbuffer, not a protobuf
    try:
        with open(path, "rb") as fh:
            return _read(fh)
    except (OSError, _Malformed, UnicodeDecodeError):
        return None


def _read(fh: BinaryIO) -> dict[str, str]:
    found: dict[str, str] = {}
    while True:
        tag = _varint(fh, eof_ok=True)
        if tag is None:
            return found
        number, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            _varint(fh)
        elif wire == _FIXED64:
            _skip(fh, 8)
        elif wire == _FIXED32:
            _skip(fh, 4)
        elif wire == _LENGTH:
            length = _varint(fh)
            assert length is not None
            if number == _METADATA_FIELD:
                if length > _MAX_ENTRY:
                    raise _Malformed
                key, value = _entry(_exact(fh, length))
                found[key] = value
            else:
                _skip(fh, length)
        else:
            raise _Malformed  # groups (3, 4) are not used by ONNX


def _entry(data: bytes) -> tuple[str, str]:
    """A StringStringEntryProto: key (field 1) and value (field 2)."""
    strings = {1: "", 2: ""}
    pos = 0
    while pos < len(data):
        tag, pos = _varint_at(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire != _LENGTH:
            raise _Malformed
        length, pos = _varint_at(data, pos)
        if pos + length > len(data):
            raise _Malformed
        if number in strings:
            strings[number] = data[pos : pos + length].decode("utf-8")
        pos += length
    return strings[1], strings[2]


def _varint(fh: BinaryIO, eof_ok: bool = False) -> int | None:
    value, shift = 0, 0
    while True:
        byte = fh.read(1)
        if not byte:
            if eof_ok and shift == 0:
                return None
            raise _Malformed
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            raise _Malformed


def _varint_at(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise _Malformed


def _exact(fh: BinaryIO, length: int) -> bytes:
    data = fh.read(length)
    if len(data) != length:
        raise _Malformed
    return data


def _skip(fh: BinaryIO, length: int) -> None:
    here = fh.tell()
    end = fh.seek(0, 2)
    if here + length > end:
        raise _Malformed
    fh.seek(here + length)
