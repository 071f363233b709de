"""A seeded fuzz pass over edgegen's bad-input handling: mutated PNG, JPEG, ONNX, golden .npz
and manifest JSON files, run through the real entry points as a user runs them.

The hand-written catalogue (badinputs.py) checks the bad inputs someone thought of; this pass
checks the ones nobody did. From a few valid seed files (a tiny exported fp32 model with its
manifest and golden samples, small crops of a real photo as PNG and JPEG) it makes each case's
file with a mutator seeded by ``(seed, case id)`` alone, so any one case can be replayed without
the others: bit flips, overwritten, inserted, duplicated and cut bytes, and format-aware edits
(PNG IHDR fields with and without a fixed CRC and ancillary chunks, JPEG SOF dimensions and
segment lengths, the ONNX graph and the ``edgegen.spec`` JSON in its metadata, golden arrays of
other shapes and dtypes, manifest fields of the wrong type or value).

Each case goes through ``edgegen run`` / ``edgegen verify`` (the click CLI's ``main``, called
in-process for speed: SystemExit gives the exit code, stdout and stderr are captured) and the
Python API (``Generator``, ``read_image``). A run passes when every call either succeeds (exit 0:
the mutation left a valid file) or refuses as the CLI promises: exit 2 with exactly one
``edgegen: error:`` line, or exit 1 with ``edgegen:`` lines (one per problem), and the API raises
only ``EdgegenError``. Any other exception is a failure ("traceback"), and so is an exit 0 of
``run`` that wrote no output, or a refused ``run`` that left files. Images also run as one of
several inputs (a folder with a good photo: exit 1, a warning per skipped file). Model, golden
and manifest files sit with the export's manifest, with one "resealed" to the mutated bytes, or
with none (see :func:`build_case`), since the manifest decides how far a changed file gets.
onnxruntime's own C++ log lines (fd 2, ANSI-coloured or ``[W:onnxruntime``) are counted apart
from edgegen's lines and shown in the summary; test_fuzz.py requires that there are none.

A malformed ONNX file may crash onnxruntime's C++ code or make it loop, so the cases run in a
worker subprocess that prints one JSON line when it starts a case and one with its result; the
parent enforces a per-case timeout and records a dead worker as a "crash" and a stalled one as a
"hang" (with the case id, kind and mutation), then starts a new worker at the next case.

    python tests/reliability/fuzz.py --seed 1 --count 1000 [--json out.json]
    python tests/reliability/fuzz.py --seed 1 --case 417 --keep /tmp/fuzz   # replay one case
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import inspect
import io
import json
import os
import queue
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent

# The mix: one cycle of 40 case ids holds 12 PNG, 10 JPEG, 8 ONNX, 5 npz and 5 JSON cases, each
# kind spread evenly over it, so 1,000 cases are 300 / 250 / 200 / 125 / 125 and a case's kind
# depends on its id alone (a case replays without the others).
KINDS = ("png", "jpeg", "onnx", "npz", "json")
MIX = {"png": 12, "jpeg": 10, "onnx": 8, "npz": 5, "json": 5}
_CYCLE = [
    kind for _, kind in sorted(((i + 0.5) / n, kind) for kind, n in MIX.items() for i in range(n))
]

DEFAULT_TIMEOUT = 120.0  # seconds per case; a healthy case takes well under one
# A 1 KB JPEG may legitimately claim 65 MP (under Pillow's 89 MP limit): decoding it, the
# inference and the denoiser's mean matching take 25 s through the API on an idle 2-core
# machine, and over 60 s beside the rest of the test suite. `edgegen run --timeout` bounds the
# inference, the case timeout the rest; a hang never ends, so the limit is generous.
RUN_LIMIT = ("--timeout", "10")
STARTUP_TIMEOUT = 120.0  # a worker's imports on a busy machine
MODEL = "model.fp32.onnx"
MANIFEST = "model.fp32.manifest.json"
GOLDEN = "model.fp32.golden.npz"
ENTRY = "edgegen.cli.main:main"
ORT_LOG_PREFIXES = ("\x1b", "[W:onnxruntime", "[E:onnxruntime", "[I:onnxruntime")


def kind_of(case_id: int) -> str:
    return _CYCLE[case_id % len(_CYCLE)]


def plan(count: int, start: int = 0, kinds: Sequence[str] = KINDS) -> list[int]:
    """The ids of the ``count`` cases from ``start`` whose kind is in ``kinds``."""
    wanted = set(kinds)
    ids: list[int] = []
    case_id = start
    while len(ids) < count:
        if kind_of(case_id) in wanted:
            ids.append(case_id)
        case_id += 1
    return ids


# -- seed files ----------------------------------------------------------------------------------


def build_seeds(root: Path) -> Path:
    """The valid files every mutation starts from, under ``root`` (made by the parent: it needs
    torch for the export, the worker needs only the runtime)."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from PIL import Image
    from tinymodels import exported, photo

    model = root / "model"
    shutil.copytree(exported(("fp32",)), model)
    images = root / "images"
    images.mkdir()
    full = photo(0)
    small, large = full[100:124, 150:182], full[60:100, 120:176]
    Image.fromarray(small).save(images / "photo-24x32.png")
    Image.fromarray(large).save(images / "photo-40x56.png")
    Image.fromarray(small).convert("L").save(images / "gray-24x32.png")
    alpha = np.linspace(0, 255, 24 * 32).reshape(24, 32, 1).astype(np.uint8)
    Image.fromarray(np.concatenate([small, alpha], axis=2)).save(images / "rgba-24x32.png")
    Image.fromarray(small).save(images / "photo-24x32.jpg", quality=90)
    Image.fromarray(large).save(images / "photo-40x56.jpg", quality=75, progressive=True)
    Image.fromarray(large).convert("L").save(images / "gray-40x56.jpg", quality=85)
    return root


@dataclass
class Seeds:
    """The seed files' bytes, read once per worker."""

    root: Path
    model: bytes
    manifest: bytes
    golden: bytes
    png: dict[str, bytes]
    jpeg: dict[str, bytes]

    @property
    def good_model(self) -> Path:
        return self.root / "model" / MODEL

    @property
    def photo(self) -> Path:
        return self.root / "images" / "photo-24x32.png"

    @classmethod
    def load(cls, root: Path) -> Seeds:
        images = sorted((root / "images").iterdir())
        return cls(
            root,
            (root / "model" / MODEL).read_bytes(),
            (root / "model" / MANIFEST).read_bytes(),
            (root / "model" / GOLDEN).read_bytes(),
            {p.name: p.read_bytes() for p in images if p.suffix == ".png"},
            {p.name: p.read_bytes() for p in images if p.suffix == ".jpg"},
        )


# -- the mutator ---------------------------------------------------------------------------------

SPECIAL_BYTES = (0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE)
HUGE_DIMS = (0, 1, 2, 65535, 65536, 1 << 24, (1 << 31) - 1, 1 << 31, (1 << 32) - 1)


class Mutator:
    """Seeded mutations of bytes and of the formats edgegen reads; each returns the new bytes
    and says what it did, so that a failure's record tells a reader what the file holds."""

    def __init__(self, seed: int, case_id: int) -> None:
        self.rng = np.random.default_rng([seed, case_id])
        self.notes: list[str] = []

    # helpers
    def pick(self, options: Sequence[Any]) -> Any:
        return options[int(self.rng.integers(len(options)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def randbytes(self, n: int) -> bytes:
        return self.rng.bytes(n)

    def dim(self, current: int) -> int:
        """A bad or merely different image dimension."""
        return int(self.pick((*HUGE_DIMS, current - 1, current + 1, current * 2, current // 2)))

    # generic byte mutations
    def bytes_(self, data: bytes, protect: int = 0) -> bytes:
        """One (sometimes two) generic mutations; ``protect`` keeps a leading signature intact
        in most cases so that the format's parser, not its sniffing, sees the damage."""
        start = protect if protect and self.chance(0.8) else 0
        for _ in range(2 if self.chance(0.2) else 1):
            data = self._one_bytes(data, start)
        return data

    def _one_bytes(self, data: bytes, start: int) -> bytes:
        buf = bytearray(data)
        n = len(buf)
        if n <= start + 1:
            start = 0
        op = self.pick(("flip", "flip", "overwrite", "truncate", "insert", "duplicate", "delete"))
        if op == "flip" and n:
            spots = sorted(
                int(i) for i in self.rng.integers(start, n, int(self.rng.integers(1, 9)))
            )
            for i in spots:
                buf[i] ^= 1 << int(self.rng.integers(8))
            self.note(f"bit flips at {spots}")
        elif op == "overwrite" and n:
            at = int(self.rng.integers(start, n))
            k = int(self.rng.integers(1, 17))
            if self.chance(0.5):
                value = self.pick(SPECIAL_BYTES)
                new = bytes([value]) * k
            else:
                new = self.randbytes(k)
            buf[at : at + k] = new[: max(0, n - at)]
            self.note(f"overwrote {k} byte(s) at {at} with {new[:8].hex()}")
        elif op == "truncate":
            cut = self.pick((0, 1, start, n // 2, n - 1, int(self.rng.integers(0, max(n, 1)))))
            buf = buf[:cut]
            self.note(f"truncated to {cut} of {n} bytes")
        elif op == "insert":
            at = int(self.rng.integers(start, n + 1))
            k = int(self.pick((1, 4, 16, 64, 1024)))
            buf[at:at] = self.randbytes(k)
            self.note(f"inserted {k} random byte(s) at {at}")
        elif op == "duplicate" and n:
            a = int(self.rng.integers(0, n))
            b = min(n, a + int(self.pick((1, 8, 64, 512, n))))
            at = int(self.rng.integers(start, n + 1))
            buf[at:at] = buf[a:b]
            self.note(f"duplicated bytes {a}:{b} at {at}")
        elif op == "delete" and n:
            a = int(self.rng.integers(start, n))
            b = min(n, a + int(self.pick((1, 8, 64, 512))))
            del buf[a:b]
            self.note(f"deleted bytes {a}:{b}")
        else:
            buf = bytearray()
            self.note("emptied the file")
        return bytes(buf)

    # PNG
    def png(self, data: bytes) -> bytes:
        roll = self.rng.random()
        if roll < 0.4:
            return self.bytes_(data, protect=8)
        if roll < 0.7:
            return self._png_ihdr(data)
        return self._png_chunks(data)

    def _png_ihdr(self, data: bytes) -> bytes:
        chunks = png_chunks(data)
        body = bytearray(chunks[0][1])
        w, h = struct.unpack(">II", bytes(body[:8]))
        name = self.pick(("width", "height", "bit_depth", "color_type", "compression", "filter",
                          "interlace", "width+height"))  # fmt: skip
        if name == "width":
            body[0:4] = struct.pack(">I", self.dim(w))
        elif name == "height":
            body[4:8] = struct.pack(">I", self.dim(h))
        elif name == "width+height":
            body[0:8] = struct.pack(">II", self.dim(w), self.dim(h))
        else:
            at = {"bit_depth": 8, "color_type": 9, "compression": 10, "filter": 11,
                  "interlace": 12}[name]  # fmt: skip
            body[at] = int(self.pick((0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 255)))
        fix = self.chance(0.6)
        chunks[0] = (b"IHDR", bytes(body), fix)
        self.note(f"IHDR {name} -> {bytes(body[:13]).hex()} ({'CRC fixed' if fix else 'old CRC'})")
        return png_join(chunks, data)

    def _png_chunks(self, data: bytes) -> bytes:
        chunks = png_chunks(data)
        op = self.pick(("drop", "duplicate", "swap", "idat", "length", "ancillary", "ancillary",
                        "apng", "split-idat"))  # fmt: skip
        if op == "drop":
            i = int(self.rng.integers(len(chunks)))
            self.note(f"dropped chunk {chunks[i][0].decode()}")
            del chunks[i]
        elif op == "duplicate":
            i = int(self.rng.integers(len(chunks)))
            chunks.insert(int(self.rng.integers(len(chunks) + 1)), chunks[i])
            self.note(f"duplicated chunk {chunks[i][0].decode()}")
        elif op == "swap" and len(chunks) > 1:
            i, j = sorted(int(k) for k in self.rng.choice(len(chunks), 2, replace=False))
            chunks[i], chunks[j] = chunks[j], chunks[i]
            self.note(f"swapped chunks {i} and {j}")
        elif op == "idat":
            idat = [i for i, c in enumerate(chunks) if c[0] == b"IDAT"]
            i = idat[0]
            raw = zlib.decompress(b"".join(chunks[k][1] for k in idat))
            how = self.pick(("short", "long", "garbage", "filter-bytes", "bad-zlib"))
            if how == "short":
                raw = raw[: len(raw) // 3]
            elif how == "long":
                raw = raw + raw
            elif how == "garbage":
                raw = self.randbytes(len(raw))
            elif how == "filter-bytes":
                buf = bytearray(raw)
                row = len(raw) // max(struct.unpack(">I", chunks[0][1][4:8])[0], 1)
                for k in range(0, len(buf), max(row, 1)):
                    buf[k] = int(self.pick((5, 6, 255)))
                raw = bytes(buf)
            packed = zlib.compress(raw) if how != "bad-zlib" else self.bytes_(zlib.compress(raw))
            chunks = [c for k, c in enumerate(chunks) if k not in idat[1:]]
            chunks[i] = (b"IDAT", packed, True)
            self.note(f"IDAT re-encoded: {how} (CRC fixed)")
        elif op == "length":
            i = int(self.rng.integers(len(chunks)))
            value = int(self.pick((0, 1, 13, (1 << 31) - 1, 1 << 31, (1 << 32) - 1)))
            self.note(f"chunk {chunks[i][0].decode()} length field -> {value}")
            return png_join(chunks, data, length_override=(i, value))
        elif op == "apng":
            frames = int(self.pick((0, 1, 2, (1 << 31) - 1)))
            actl = struct.pack(">II", frames, 0)
            chunks.insert(1, (b"acTL", actl, True))
            if self.chance(0.5):
                fctl = self.randbytes(26)
                chunks.insert(2, (b"fcTL", fctl, True))
            self.note(f"APNG acTL num_frames={frames}")
        elif op == "split-idat":
            i = next(k for k, c in enumerate(chunks) if c[0] == b"IDAT")
            body = chunks[i][1]
            cut = int(self.rng.integers(1, max(len(body), 2)))
            chunks[i : i + 1] = [(b"IDAT", body[:cut], True), (b"IDAT", body[cut:], True)]
            if self.chance(0.5):
                chunks.insert(i + 1, (b"tEXt", b"Comment\0between", True))
            self.note(f"IDAT split at {cut}")
        else:
            kind, body = self._png_ancillary()
            at = 1 if kind not in (b"tRNS",) else len(chunks) - 2
            chunks.insert(max(1, at), (kind, body, self.chance(0.85)))
            self.note(f"inserted {kind.decode()} chunk ({len(body)} bytes)")
        return png_join(chunks, data)

    def _png_ancillary(self) -> tuple[bytes, bytes]:
        kind = self.pick(("eXIf", "iCCP", "tRNS", "gAMA", "sRGB", "pHYs", "tEXt", "zTXt",
                          "iTXt", "PLTE", "sBIT", "bKGD", "cHRM", "abCD", "sPLT"))  # fmt: skip
        if kind == "eXIf":
            body = exif_payload(self) if self.chance(0.7) else self.randbytes(40)
        elif kind == "iCCP":
            profile = bytearray(self.randbytes(int(self.pick((0, 20, 128, 600)))))
            if len(profile) >= 20 and self.chance(0.7):
                profile[16:20] = self.pick((b"RGB ", b"GRAY", b"CMYK"))
            packed = zlib.compress(bytes(profile))
            if self.chance(0.3):
                packed = packed[: len(packed) // 2]
            body = b"icc\0" + bytes([int(self.pick((0, 1)))]) + packed
        elif kind in ("zTXt", "iTXt"):
            body = b"Comment\0\0" + (
                self.randbytes(20) if self.chance(0.5) else zlib.compress(b"x")
            )
        elif kind == "tEXt":
            body = b"K" * int(self.pick((0, 79, 80, 200))) + b"\0" + self.randbytes(16)
        else:
            body = self.randbytes(int(self.pick((0, 1, 2, 3, 4, 6, 9, 13, 32, 768, 769))))
        return kind.encode(), body

    # JPEG
    def jpeg(self, data: bytes) -> bytes:
        roll = self.rng.random()
        if roll < 0.4:
            return self.bytes_(data, protect=2)
        if roll < 0.7:
            return self._jpeg_sof(data)
        return self._jpeg_segments(data)

    def _jpeg_sof(self, data: bytes) -> bytes:
        buf = bytearray(data)
        sof = next(s for s in jpeg_segments(data) if s[0] in SOF_MARKERS)
        at = sof[1]
        h, w = struct.unpack(">HH", bytes(buf[at + 5 : at + 9]))
        name = self.pick(("height", "width", "height+width", "precision", "components",
                          "sampling", "quant-table", "marker"))  # fmt: skip
        dims = (0, 1, 2, 7, 8, 9, 16, 65535, 65500, 30000, 1000)
        if name == "height":
            buf[at + 5 : at + 7] = struct.pack(">H", self.pick((*dims, h - 1, h + 1, h * 2)))
        elif name == "width":
            buf[at + 7 : at + 9] = struct.pack(">H", self.pick((*dims, w - 1, w + 1, w * 2)))
        elif name == "height+width":
            buf[at + 5 : at + 9] = struct.pack(">HH", self.pick(dims), self.pick(dims))
        elif name == "precision":
            buf[at + 4] = int(self.pick((0, 1, 12, 16, 255)))
        elif name == "components":
            buf[at + 9] = int(self.pick((0, 1, 2, 4, 255)))
        elif name == "sampling":
            ncomp = max(buf[at + 9], 1)
            k = int(self.rng.integers(ncomp))
            buf[at + 11 + 3 * k] = int(self.pick((0x00, 0x11, 0x22, 0x44, 0x0F, 0xF0, 0xFF)))
        elif name == "quant-table":
            ncomp = max(buf[at + 9], 1)
            k = int(self.rng.integers(ncomp))
            buf[at + 12 + 3 * k] = int(self.pick((1, 3, 4, 255)))
        else:
            buf[at + 1] = int(self.pick((0xC1, 0xC3, 0xC5, 0xC9, 0xCB, 0xCF)))
        self.note(f"SOF0x{data[at + 1]:02X} {name}: {bytes(buf[at + 4 : at + 10]).hex()}")
        return bytes(buf)

    def _jpeg_segments(self, data: bytes) -> bytes:
        segs = jpeg_segments(data)
        op = self.pick(("length", "drop", "duplicate", "exif", "exif", "icc", "dqt", "dri",
                        "sos", "no-eoi"))  # fmt: skip
        buf = bytearray(data)
        with_len = [s for s in segs if s[2] > 0]
        if op == "length":
            s = self.pick(with_len)
            value = int(self.pick((0, 1, 2, 3, s[2] - 1, s[2] + 1, 65535)))
            buf[s[1] + 2 : s[1] + 4] = struct.pack(">H", value)
            self.note(f"segment 0xFF{s[0]:02X} length {s[2]} -> {value}")
        elif op == "drop":
            s = self.pick(with_len[:-1] or with_len)
            del buf[s[1] : s[1] + 2 + s[2]]
            self.note(f"dropped segment 0xFF{s[0]:02X}")
        elif op == "duplicate":
            s = self.pick(with_len)
            seg = bytes(buf[s[1] : s[1] + 2 + s[2]])
            buf[s[1] : s[1]] = seg
            self.note(f"duplicated segment 0xFF{s[0]:02X}")
        elif op in ("exif", "icc"):
            if op == "exif":
                payload = b"Exif\0\0" + (
                    exif_payload(self) if self.chance(0.8) else self.randbytes(30)
                )
                marker = 0xE1
            else:
                profile = bytearray(self.randbytes(int(self.pick((20, 128, 600)))))
                profile[16:20] = self.pick((b"RGB ", b"GRAY", b"CMYK"))
                seq = bytes([int(self.pick((0, 1, 2))), int(self.pick((0, 1, 3)))])
                payload = b"ICC_PROFILE\0" + seq + bytes(profile)
                marker = 0xE2
            seg = bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload
            buf[2:2] = seg
            self.note(f"inserted APP{marker - 0xE0} {op} segment ({len(payload)} bytes)")
        elif op == "dqt":
            s = next(s for s in segs if s[0] == 0xDB)
            fill = int(self.pick((0, 1, 255)))
            buf[s[1] + 5 : s[1] + 2 + s[2]] = bytes([fill]) * (s[2] - 3)
            self.note(f"DQT values all {fill}")
        elif op == "dri":
            interval = int(self.pick((0, 1, 2, 65535)))
            seg = b"\xff\xdd\x00\x04" + struct.pack(">H", interval)
            sos = next(s for s in segs if s[0] == 0xDA)
            buf[sos[1] : sos[1]] = seg
            self.note(f"inserted DRI interval {interval} (no RST markers)")
        elif op == "sos":
            sos = next(s for s in segs if s[0] == 0xDA)
            field_at = sos[1] + 4 + int(self.rng.integers(max(sos[2] - 2, 1)))
            value = int(self.pick((0, 1, 4, 0x44, 0xFF)))
            buf[field_at] = value
            self.note(f"SOS byte {field_at - sos[1]} -> {value}")
        else:
            end = bytes(buf).rfind(b"\xff\xd9")
            if end > 0:
                del buf[end:]
            self.note("removed EOI")
        return bytes(buf)

    # ONNX
    def onnx(self, data: bytes) -> bytes:
        roll = self.rng.random()
        if roll < 0.35:
            return self.bytes_(data)
        if roll < 0.8:
            return self._onnx_spec(data)
        return self._onnx_graph(data)

    def _onnx_spec(self, data: bytes) -> bytes:
        import onnx

        model = onnx.load_from_string(data)
        entry = next(p for p in model.metadata_props if p.key == "edgegen.spec")
        text = self._spec_text(json.loads(entry.value))
        if self.chance(0.05):
            model.metadata_props.remove(entry)
            self.note("spec metadata removed")
        else:
            entry.value = text
        if self.chance(0.05):
            extra = model.metadata_props.add()
            extra.key, extra.value = "edgegen.spec", '{"task": "denoise"}'
            self.note("a second edgegen.spec entry appended")
        out = bytes(model.SerializeToString())
        at = out.find(text.encode()) if text else -1
        if at >= 0 and self.chance(0.1):  # protobuf strings must be UTF-8: this one is not
            k = at + int(self.rng.integers(len(text.encode())))
            out = out[:k] + bytes([int(self.pick((0xFF, 0xC3, 0xED)))]) + out[k + 1 :]
            self.note(f"then spec byte {k - at} -> invalid UTF-8")
        return out

    def _spec_text(self, spec: dict[str, Any]) -> str:
        roll = self.rng.random()
        if roll < 0.12:
            text = str(self.pick(("", "null", "[]", "{", '"denoise"', "1e999", "{}",
                                  '{"task": "denoise", "task": "sr", "scale": 2}',
                                  "[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000,
                                  '{"task": "\\ud800"}', '{"task": "denoise"} trailing',
                                  "\ufeff{}")))  # fmt: skip
            self.note(f"spec text -> {text[:60]!r}{'...' if len(text) > 60 else ''}")
            return text
        paths = [(k,) for k in spec] + [
            ("arch_params", "channels"), ("arch_params", "blocks"), ("provenance", "step"),
            ("provenance", "metrics"), ("provenance", "metrics", "psnr"),
            ("degradation", "sigma"), ("value_range", 0), ("value_range", 1),
            ("colour",), ("", ), ("provenance", "unknown"),
        ]  # fmt: skip
        for _ in range(2 if self.chance(0.2) else 1):
            path = self.pick(paths)
            if self.chance(0.12) and len(path) == 1 and path[0] in spec:
                del spec[path[0]]
                self.note(f"spec field {path[0]!r} removed")
                continue
            value = self.bad_value(path[-1])
            set_path(spec, path, value)
            self.note(f"spec {'.'.join(map(str, path))} = {short(value)}")
        return json.dumps(spec)

    def bad_value(self, name: Any = None) -> Any:
        """A value of the wrong type, out of range, or a plausible-but-wrong one for ``name``."""
        specific: dict[Any, tuple[Any, ...]] = {
            "task": ("sr", "jpeg", "Denoise", "inpaint"),
            "scale": (2, 3, 4, 5, 8),
            "in_channels": (1, 2, 4),
            "out_channels": (1, 2, 4),
            "color_order": ("BGR", "GRAY", "rgb", "YUV"),
            "layout": ("NHWC", "CHW"),
            "pad_multiple": (2, 7, 64, 1023, 1024, 1025),
            "receptive_field": (1, 65536, 65537),
            "precision": ("fp16", "int8", "mixed", "bf16"),
            "version": (0, 2, 99),
            "value_range": ([0, 255], [-1, 1], [1, 0], [0], [0, 1, 2], [0, 65536]),
            0: (-1.0, 0.5, 1.0, 65535.0, 65536.0),
            1: (0.0, 0.5, 255.0, 65535.0, 1e300),
        }
        common: tuple[Any, ...] = (
            -1, 0, -(1 << 63), 1 << 64, 10**30, 1e308, float("nan"), float("inf"),
            float("-inf"), "x", "", "NaN", None, True, False, [], {}, [1, 2, 3], {"a": 1},
            1.5, "9" * 5000, [[[[[]]]]],
        )  # fmt: skip
        if name in specific and self.chance(0.5):
            return self.pick(specific[name])
        return self.pick(common)

    def _onnx_graph(self, data: bytes) -> bytes:
        import onnx
        from onnx import TensorProto

        model = onnx.load_from_string(data)
        graph = model.graph
        ops = ("elem-type", "dim", "rank", "drop-node", "op-type", "attribute", "initializer",
               "opset", "ir", "extra-io", "external", "rename")  # fmt: skip
        op = self.pick(ops)
        if op == "elem-type":
            t = TensorProto
            value = int(self.pick((t.DOUBLE, t.FLOAT16, t.INT64, t.UINT8, t.STRING, t.BOOL, 0)))
            target = self.pick((graph.input[0], graph.output[0]))
            target.type.tensor_type.elem_type = value
            self.note(f"{target.name} elem_type -> {value}")
        elif op in ("dim", "rank"):
            target = self.pick((graph.input[0], graph.output[0]))
            dims = target.type.tensor_type.shape.dim
            if op == "dim":
                k = int(self.rng.integers(len(dims)))
                dims[k].dim_value = int(self.pick((0, 1, 2, 5, 24, 37, (1 << 31) - 1)))
                self.note(f"{target.name} dim {k} -> {dims[k].dim_value}")
            elif self.chance(0.5) and len(dims):
                del dims[len(dims) - 1]
                self.note(f"{target.name} rank -> {len(dims)}")
            else:
                dims.add().dim_param = "X"
                self.note(f"{target.name} rank -> {len(dims)}")
        elif op == "drop-node":
            k = int(self.rng.integers(len(graph.node)))
            self.note(f"removed node {k} ({graph.node[k].op_type})")
            del graph.node[k]
        elif op == "op-type":
            k = int(self.rng.integers(len(graph.node)))
            new = str(self.pick(("Foo", "Relu", "Identity", "Conv", "Loop", "Add")))
            self.note(f"node {k} op {graph.node[k].op_type} -> {new}")
            graph.node[k].op_type = new
            if self.chance(0.3):
                graph.node[k].domain = "com.example.evil"
        elif op == "attribute":
            convs = [n for n in graph.node if n.attribute]
            node = self.pick(convs)
            attr = self.pick(list(node.attribute))
            if attr.ints:
                k = int(self.rng.integers(len(attr.ints)))
                attr.ints[k] = int(self.pick((0, -1, -(1 << 40), 1 << 40, 1000)))
            elif attr.type == onnx.AttributeProto.INT:
                attr.i = int(self.pick((0, -1, 1 << 40, 7)))
            else:
                attr.f = float(self.pick((float("nan"), -1.0, 1e38)))
            self.note(f"{node.op_type}.{attr.name} -> {onnx.helper.get_attribute_value(attr)}")
        elif op == "initializer":
            init = self.pick(list(graph.initializer))
            how = self.pick(("dims", "raw-short", "raw-long", "nan", "dtype"))
            if how == "dims" and len(init.dims):
                init.dims[int(self.rng.integers(len(init.dims)))] = int(
                    self.pick((0, 1, 7, 1 << 20))
                )
            elif how == "raw-short":
                init.raw_data = init.raw_data[: len(init.raw_data) // 2]
            elif how == "raw-long":
                init.raw_data = init.raw_data + init.raw_data
            elif how == "nan":
                values = np.frombuffer(init.raw_data, np.float32).copy()
                values[:] = np.float32(self.pick((np.nan, np.inf, 1e38)))
                init.raw_data = values.tobytes()
            else:
                init.data_type = int(self.pick((TensorProto.DOUBLE, TensorProto.INT8, 0, 99)))
            self.note(f"initializer {init.name}: {how}")
        elif op == "opset":
            model.opset_import[0].version = int(self.pick((0, 1, 6, 99, 1 << 40)))
            self.note(f"opset -> {model.opset_import[0].version}")
        elif op == "ir":
            model.ir_version = int(self.pick((0, 1, 3, 99, 1 << 40)))
            self.note(f"ir_version -> {model.ir_version}")
        elif op == "extra-io":
            which = str(self.pick(("input", "output")))
            src = graph.input if which == "input" else graph.output
            extra = src.add()
            extra.CopyFrom(src[0])
            extra.name = "extra"
            self.note(f"added a second {which}")
        elif op == "external":
            init = self.pick(list(graph.initializer))
            init.ClearField("raw_data")
            init.data_location = TensorProto.EXTERNAL
            where = str(self.pick(("weights.bin", "../weights.bin", "/dev/zero", "/etc/hostname",
                                   "", ".", "model.fp32.onnx")))  # fmt: skip
            offset = str(self.pick(("0", "-1", "1000000000", "x")))
            for key, text in {"location": where, "offset": offset, "length": "64"}.items():
                ref = init.external_data.add()
                ref.key, ref.value = key, text
            self.note(f"initializer {init.name} external at {where!r} offset {offset}")
        else:
            graph.output[0].name = "nowhere"
            self.note("graph output renamed to a name no node produces")
        return bytes(model.SerializeToString())

    # npz (golden samples)
    def npz(self, data: bytes) -> bytes:
        if self.chance(0.35):
            return self.bytes_(data)
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        op = self.pick(("shape", "dtype", "values", "drop", "add", "meta", "meta", "zip"))
        if op == "zip":
            return self._npz_zip(arrays)
        names = [k for k in arrays if k != "meta"]
        if op == "shape":
            k = self.pick(names)
            shape = self.pick(((1, 3, 5, 7), (3, 37, 53), (1, 1, 37, 53), (1, 4, 37, 53),
                               (0, 3, 37, 53), (1, 3, 0, 0), (), (1, 3, 37, 53, 1), (2, 3, 37, 53),
                               (1, 3, 1, 1), (1, 3, 1024, 1024)))  # fmt: skip
            arrays[k] = np.full(shape, 0.5, np.float32)
            self.note(f"{k} -> shape {shape}")
        elif op == "dtype":
            k = self.pick(names)
            dtype = self.pick(("float64", "float16", "int8", "uint8", "int64", "bool",
                               "complex64", "<U3", "V8", "datetime64[s]", "object"))  # fmt: skip
            arrays[k] = arrays[k].astype(dtype) if dtype != "V8" else np.zeros(3, "V8")
            self.note(f"{k} -> dtype {dtype}")
        elif op == "values":
            k = self.pick(names)
            value = self.pick((np.nan, np.inf, -np.inf, 1e38, -1e38, 0.0, 255.0))
            arr = arrays[k].copy()
            arr.reshape(-1)[:: int(self.pick((1, 7, 1000)))] = value
            arrays[k] = arr
            self.note(f"{k} values -> {value}")
        elif op == "drop":
            k = self.pick((*names, "meta", "inputs"))
            if k == "inputs":
                arrays = {n: a for n, a in arrays.items() if not n.startswith("input_")}
            else:
                del arrays[k]
            self.note(f"removed {k}")
        elif op == "add":
            k = self.pick(("input_9", "output_9", "input_4", "../evil", "meta.npy"))
            arrays[k] = np.zeros((1, 3, 4, 4), np.float32)
            self.note(f"added {k}")
        else:
            arrays["meta"] = self._golden_meta(json.loads(bytes(arrays["meta"]).decode()))
        buf = io.BytesIO()
        save = np.savez_compressed if self.chance(0.6) else np.savez
        save(buf, **arrays)  # type: ignore[arg-type]
        return buf.getvalue()

    def _golden_meta(self, meta: dict[str, Any]) -> np.ndarray:
        roll = self.rng.random()
        if roll < 0.15:
            kind = self.pick(("float", "2d", "str", "not-json", "array", "deep", "bad-utf8"))
            self.note(f"meta -> {kind}")
            if kind == "float":
                return np.zeros(4, np.float32)
            if kind == "2d":
                return np.frombuffer(json.dumps(meta).encode(), np.uint8)[None, :]
            if kind == "str":
                return np.array(json.dumps(meta))
            raw = {"not-json": b"{precision: fp32", "array": b"[1, 2]", "deep": b"[" * 100000,
                   "bad-utf8": b"\xff\xfe{}"}[kind]  # fmt: skip
            return np.frombuffer(raw, np.uint8)
        path = self.pick((("tolerance",), ("tolerance", "max_lsb"), ("tolerance", "max_lsb"),
                          ("tolerance", "max_pct_over_1lsb"), ("tolerance", "min_psnr_vs_torch"),
                          ("tolerance", "max_gt_psnr_drop"), ("samples",), ("samples", 0),
                          ("samples", 0, "size"), ("precision",), ("unknown",)))  # fmt: skip
        value = self.bad_value(path[-1])
        set_path(meta, path, value)
        self.note(f"meta {'.'.join(map(str, path))} = {short(value)}")
        return np.frombuffer(json.dumps(meta).encode(), np.uint8)

    def _npz_zip(self, arrays: dict[str, np.ndarray]) -> bytes:
        """Archives that np.savez never writes: odd members, duplicates, other compression."""
        buf = io.BytesIO()
        how = self.pick(("garbage-member", "duplicate", "bzip2", "lzma", "stored-bad-crc",
                         "nested-dir", "empty-zip"))  # fmt: skip
        compression = {"bzip2": zipfile.ZIP_BZIP2, "lzma": zipfile.ZIP_LZMA}.get(
            how, zipfile.ZIP_DEFLATED
        )
        with (
            warnings_off(),
            zipfile.ZipFile(buf, "w", compression=compression) as zf,
        ):
            if how != "empty-zip":
                for name, arr in arrays.items():
                    member = io.BytesIO()
                    np.save(member, arr)
                    prefix = "dir/" if how == "nested-dir" else ""
                    zf.writestr(prefix + name + ".npy", member.getvalue())
            if how == "garbage-member":
                zf.writestr("input_0.npy", self.randbytes(64))
            elif how == "duplicate":
                zf.writestr("meta.npy", self._npy(np.zeros(3, np.uint8)))
        out = buf.getvalue()
        if how == "stored-bad-crc":
            out = self.bytes_(out)
        self.note(f"zip: {how}")
        return out

    @staticmethod
    def _npy(arr: np.ndarray) -> bytes:
        member = io.BytesIO()
        np.save(member, arr)
        return member.getvalue()

    # JSON manifest
    def manifest(self, data: bytes, model_sha: str) -> bytes:
        if self.chance(0.3):
            return self.bytes_(data)
        manifest = json.loads(data)
        roll = self.rng.random()
        if roll < 0.15:
            kind = self.pick(("list", "string", "number", "null", "empty", "deep", "bom",
                              "utf16", "bad-utf8", "dup-keys", "trailing", "nan"))  # fmt: skip
            self.note(f"manifest -> {kind}")
            text = json.dumps(manifest)
            raw = {
                "list": b"[]", "string": b'"model.fp32.onnx"', "number": b"1", "null": b"null",
                "empty": b"", "deep": b'{"a":' * 50000, "bom": b"\xef\xbb\xbf" + text.encode(),
                "utf16": text.encode("utf-16"), "bad-utf8": b'{"file": "\xff\xfe"}',
                "dup-keys": (text[:-1] + ', "sha256": "' + "0" * 64 + '"}').encode(),
                "trailing": text.encode() + b"\n}garbage",
                "nan": text.replace(f'"{model_sha}"', "NaN").encode(),
            }[kind]  # fmt: skip
            return raw
        paths = [(k,) for k in manifest] + [("golden", "file"), ("golden", "sha256"),
                 ("spec", "task"), ("spec", "scale"), ("ort",), ("ort", "sha256")]  # fmt: skip
        for _ in range(2 if self.chance(0.25) else 1):
            path = self.pick(paths)
            if self.chance(0.15) and len(path) == 1 and path[0] in manifest:
                del manifest[path[0]]
                self.note(f"manifest field {path[0]!r} removed")
                continue
            specific: dict[str, tuple[Any, ...]] = {
                "sha256": ("0" * 64, model_sha.upper(), model_sha[:12], f" {model_sha}",
                           hashlib.sha256(b"other").hexdigest(), model_sha + "00"),
                "file": ("model.fp16.onnx", "../model.fp32.onnx", "/etc/hostname", "",
                         "model.fp32.golden.npz", "MODEL.FP32.ONNX", "model.fp32.onnx\0"),
                "size_bytes": (0, -1, 1 << 40, "8810", 8810.5),
                "golden": ("model.fp32.golden.npz", {"file": GOLDEN}, {"sha256": "0" * 64},
                           {"file": GOLDEN, "sha256": "0" * 64}, {"file": "../x", "sha256": 1}),
            }  # fmt: skip
            name = path[-1]
            if name in specific and self.chance(0.6):
                value = self.pick(specific[name])
            else:
                value = self.bad_value(name)
            set_path(manifest, path, value)
            self.note(f"manifest {'.'.join(map(str, path))} = {short(value)}")
        text = json.dumps(manifest, indent=2)
        if self.chance(0.1):
            cut = int(self.rng.integers(0, len(text)))
            text = text[:cut]
            self.note(f"then truncated to {cut} characters")
        return text.encode()


def set_path(obj: Any, path: tuple[Any, ...], value: Any) -> None:
    """``obj[path[0]]...[path[-1]] = value``, making (or replacing) containers on the way."""
    for i, key in enumerate(path[:-1]):
        nxt = path[i + 1]
        child = obj[key] if _has(obj, key) else None
        wrong = not isinstance(child, list) if isinstance(nxt, int) else not isinstance(child, dict)
        if wrong:
            child = [None] * (nxt + 1) if isinstance(nxt, int) else {}
            obj[key] = child
        if isinstance(child, list) and isinstance(nxt, int) and len(child) <= nxt:
            child.extend([None] * (nxt + 1 - len(child)))
        obj = child
    obj[path[-1]] = value


def _has(obj: Any, key: Any) -> bool:
    if isinstance(obj, dict):
        return key in obj
    return isinstance(key, int) and 0 <= key < len(obj)


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@contextlib.contextmanager
def warnings_off() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def exif_payload(m: Mutator) -> bytes:
    """A small TIFF (EXIF body) whose orientation tag and IFD are what the mutator picks."""
    order = m.pick((b"MM", b"II"))
    fmt = ">" if order == b"MM" else "<"
    orientation = int(m.pick((0, 1, 2, 3, 5, 6, 7, 8, 9, 255, 65535)))
    count = int(m.pick((1, 1, 1, 0, 2, 65535)))
    kind = int(m.pick((3, 3, 3, 4, 2, 0, 13)))
    ifd_at = int(m.pick((8, 8, 8, 0, 4, 1 << 30)))
    head = order + struct.pack(f"{fmt}HI", 42, ifd_at)
    entry = struct.pack(f"{fmt}HHI", 0x0112, kind, count) + struct.pack(f"{fmt}HH", orientation, 0)
    body = struct.pack(f"{fmt}H", 1) + entry + struct.pack(f"{fmt}I", m.pick((0, 0, 8, 1 << 30)))
    m.note(
        f"EXIF {order.decode()} orientation={orientation} type={kind} count={count} ifd={ifd_at}"
    )
    return head + body


def png_chunks(data: bytes) -> list[tuple[bytes, bytes, bool]]:
    """A valid PNG's chunks as (type, body, fix_crc) triples (fix_crc: write a correct CRC)."""
    chunks: list[tuple[bytes, bytes, bool]] = []
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunks.append((kind, data[pos + 8 : pos + 8 + length], True))
        pos += 12 + length
    return chunks


def png_join(
    chunks: list[tuple[bytes, bytes, bool]],
    original: bytes,
    length_override: tuple[int, int] | None = None,
) -> bytes:
    """Chunks back to a PNG; a chunk without ``fix_crc`` keeps the CRC it had in ``original``
    (or a wrong one when it is new)."""
    old_crcs = {(k, b): original[i : i + 4] for k, b, i in _crc_spots(original)}
    out = bytearray(b"\x89PNG\r\n\x1a\n")
    for index, (kind, body, fix) in enumerate(chunks):
        crc = struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        if not fix:
            crc = next((c for (k, _), c in old_crcs.items() if k == kind), b"\0\0\0\0")
        length = len(body)
        if length_override is not None and length_override[0] == index:
            length = length_override[1]
        out += struct.pack(">I", length) + kind + body + crc
    return bytes(out)


def _crc_spots(data: bytes) -> Iterator[tuple[bytes, bytes, int]]:
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        yield data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length], pos + 8 + length
        pos += 12 + length


SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCF})


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """A valid JPEG's marker segments up to the first scan: (marker, offset, length field)."""
    segs: list[tuple[int, int, int]] = [(0xD8, 0, 0)]
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segs.append((marker, pos, length))
        if marker == 0xDA:
            break
        pos += 2 + length
    return segs


# -- cases ---------------------------------------------------------------------------------------


@dataclass
class Call:
    """One entry point called on a case's files: ``argv`` for the CLI, or an API call."""

    entry: str  # "run", "verify", "api-model", "api-image", "api-verify"
    argv: list[str] = field(default_factory=list)
    path: str = ""  # the mutated file (API calls) or the expected output (CLI run)


@dataclass
class Built:
    kind: str
    mutation: str
    layout: str
    calls: list[Call]


def build_case(
    seeds: Seeds, seed: int, case_id: int, folder: Path, no_manifest: bool = False
) -> Built:
    """Write case ``case_id``'s mutated file (and what sits beside it) under ``folder``.

    Model, golden and manifest cases sit in one of three layouts, because a manifest beside a
    model decides how far a file gets: with the export's own manifest a changed file is
    refused by its sha256 before anything parses it; with a manifest "resealed" to the changed
    bytes (as a careless re-export, or an attacker, would leave it) the file's parser sees the
    damage; without one the model loads as a user's own ONNX, and ``verify`` needs
    ``--no-manifest`` (``no_manifest``: this edgegen has that flag) to read the golden file."""
    kind = kind_of(case_id)
    m = Mutator(seed, case_id)
    out = str(folder / "out")
    if kind in ("png", "jpeg"):
        pool = seeds.png if kind == "png" else seeds.jpeg
        name = m.pick(sorted(pool))
        m.note(f"from {name}")
        data = m.png(pool[name]) if kind == "png" else m.jpeg(pool[name])
        suffix = m.pick((".png", ".jpg")) if m.chance(0.05) else Path(name).suffix
        target = folder / f"fuzz{suffix}"
        target.write_bytes(data)
        layout = "alone"
        given = target
        if m.chance(0.3):  # among other inputs: skipped with a warning, exit 1, not exit 2
            layout = "in a folder with a good photo"
            folder_in = folder / "photos"
            folder_in.mkdir()
            target = target.rename(folder_in / target.name)
            shutil.copyfile(seeds.photo, folder_in / "good.png")
            given = folder_in
        run = ["run", str(seeds.good_model), str(given), "-o", out, "--no-progress", *RUN_LIMIT]
        calls = [
            Call("run", run, str(Path(out) / "fuzz.png")),
            Call("api-image", path=str(target)),
        ]
        return Built(kind, "; ".join(m.notes), f"mutated {kind} file {layout}", calls)
    model_dir = folder / "model"
    model_dir.mkdir()
    target = model_dir / MODEL
    files = {MODEL: seeds.model, GOLDEN: seeds.golden, MANIFEST: seeds.manifest}
    if kind == "onnx":
        files[MODEL] = m.onnx(seeds.model)
        layout = m.pick(("manifest", "resealed", "resealed", "no-manifest", "no-manifest"))
    elif kind == "npz":
        files[GOLDEN] = m.npz(seeds.golden)
        layout = m.pick(("manifest", "resealed", "resealed", "no-manifest", "no-manifest"))
    else:
        sha = hashlib.sha256(seeds.model).hexdigest()
        files[MANIFEST] = m.manifest(seeds.manifest, sha)
        layout = "manifest"
    if layout == "resealed":
        manifest = json.loads(seeds.manifest)
        manifest["sha256"] = hashlib.sha256(files[MODEL]).hexdigest()
        manifest["size_bytes"] = len(files[MODEL])
        manifest["golden"]["sha256"] = hashlib.sha256(files[GOLDEN]).hexdigest()
        files[MANIFEST] = (json.dumps(manifest, indent=2) + "\n").encode()
    elif layout == "no-manifest":
        del files[MANIFEST]
    for name, data in files.items():
        (model_dir / name).write_bytes(data)
    run = ["run", str(target), str(seeds.photo), "-o", out, "--no-progress", *RUN_LIMIT]
    calls = [
        Call("run", run, str(Path(out) / seeds.photo.with_suffix(".png").name)),
        Call("verify", ["verify", str(target)]),
    ]
    if layout == "no-manifest" and no_manifest:
        calls.append(Call("verify", ["verify", str(target), "--no-manifest"]))
    calls.append(Call("api-verify" if kind == "npz" else "api-model", path=str(target)))
    what = {"manifest": "with the export's manifest", "resealed": "with a manifest resealed to "
            "the mutated bytes", "no-manifest": "without a manifest"}[layout]  # fmt: skip
    return Built(kind, "; ".join(m.notes), f"mutated {kind} file {what}", calls)


# -- running one call ----------------------------------------------------------------------------


@dataclass
class Outcome:
    entry: str
    command: str
    outcome: str  # "accepted", "refused" or "failure"
    exit_code: int | None = None
    stderr: str = ""
    reason: str = ""  # why a failure is one
    error: str = ""  # the exception (API) or the traceback's last line
    traceback: str = ""
    signature: str = ""  # what distinct failures are grouped by
    ort_log: list[str] = field(default_factory=list)
    seconds: float = 0.0


@contextlib.contextmanager
def capture_fd2() -> Iterator[Callable[[], str]]:
    """Send file descriptor 2 (onnxruntime's C++ log, anything written below Python) to a
    temporary file for the duration; the yielded function returns what was written."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        written: list[str] = []
        try:
            yield lambda: "".join(written)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            written.append(sink.read().decode("utf-8", "replace"))


@contextlib.contextmanager
def fresh_process_state() -> Iterator[None]:
    """What a new ``edgegen`` process would start with, as far as one call can see it: the
    warnings filters as they were, and every "shown once" record forgotten (entering
    catch_warnings invalidates them), so a library warning is printed on every case that
    triggers it, not only on the first one in this worker."""
    import warnings

    with warnings.catch_warnings():
        yield


def split_ort_log(text: str) -> tuple[list[str], list[str]]:
    """(onnxruntime's own log lines, every other non-empty line)."""
    ort, other = [], []
    for line in text.splitlines():
        if line.startswith(ORT_LOG_PREFIXES):
            ort.append(line)
        elif line.strip():
            other.append(line)
    return ort, other


def _signature(exc: BaseException) -> str:
    """An exception type and the innermost frame inside edgegen (else the innermost at all):
    the same bug reached through ``run``, ``verify`` and the API is one cause."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if _ours(f.filename)] or frames
    if ours:
        f = ours[-1]
        short_name = "/".join(Path(f.filename).parts[-2:])
        return f"{type(exc).__name__} at {short_name}:{f.lineno} in {f.name}"
    return type(exc).__name__


def _ours(filename: str) -> bool:
    """A frame of edgegen's own code (not a library's, not this harness's)."""
    if "site-packages" in filename or "/.venv/" in filename or filename.endswith("fuzz.py"):
        return False
    return "edgegen" in filename or filename.startswith(str(TESTS.parent))


def run_cli(main: Callable[[list[str]], Any], call: Call) -> Outcome:
    """``main(argv)`` in-process; the exit code, stdout and stderr checked as the CLI promises."""
    result = Outcome(call.entry, "edgegen " + " ".join(call.argv), "failure")
    out, err = io.StringIO(), io.StringIO()
    code: Any = 0
    exc: BaseException | None = None
    with (
        fresh_process_state(),
        capture_fd2() as raw,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main(list(call.argv))
        except SystemExit as stop:
            code = stop.code
        except BaseException as caught:  # any other exception is the finding
            exc = caught
    ort, stray = split_ort_log(raw())
    result.ort_log = ort
    stderr = err.getvalue() + "".join(line + "\n" for line in stray)
    result.stderr = stderr
    if exc is not None:
        result.reason = "traceback"
        result.error = f"{type(exc).__name__}: {first_line(exc)}"
        result.traceback = "".join(traceback.format_exception(exc))[-4000:]
        result.signature = _signature(exc)
        return result
    code = 0 if code is None else code
    result.exit_code = code if isinstance(code, int) else None
    lines = [line for line in stderr.splitlines() if line.strip()]
    if not isinstance(code, int):
        result.reason = f"SystemExit({code!r}): not an exit code"
    elif "Traceback" in stderr:
        result.reason = "a traceback on stderr"
    elif code == 0:
        if call.entry == "run" and not Path(call.path).is_file():
            result.reason = f"exit 0 but no output {Path(call.path).name} was written"
        else:
            result.outcome = "accepted"
    elif code == 2:
        if len(lines) != 1 or not lines[0].startswith("edgegen: error:"):
            result.reason = f"exit 2 with {len(lines)} stderr line(s), not one 'edgegen: error:'"
        elif call.entry == "run" and _leftovers(Path(call.path).parent):
            result.reason = f"refused but left {_leftovers(Path(call.path).parent)}"
        else:
            result.outcome = "refused"
    elif code == 1:
        bad = [ln for ln in lines if not (ln.startswith("edgegen:") or ln.startswith("  "))]
        if bad:
            result.reason = f"exit 1 with a stderr line that is not edgegen's: {bad[0][:120]!r}"
        else:
            result.outcome = "refused"
    else:
        result.reason = f"exit code {code}, not 0, 1 or 2"
    if result.outcome == "failure":
        result.signature = f"{call.entry}: {result.reason.split(':')[0]} " + _stderr_gist(lines)
        result.error = lines[-1] if lines else ""
    return result


def _stderr_gist(lines: list[str]) -> str:
    """The words of a bad stderr that are not paths or numbers: what groups its failures."""
    if not lines:
        return "(no stderr)"
    words = [w for w in lines[-1].split() if "/" not in w and not any(c.isdigit() for c in w)]
    return "[" + " ".join(words[:10]) + "]"


def _leftovers(out: Path) -> list[str]:
    if not out.is_dir():
        return []
    return sorted(p.name for p in out.iterdir())


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ""


class Api:
    """The Python API as an application uses it; one Generator of the good model is reused for
    the image cases (it is what an application keeps)."""

    def __init__(self, good_model: Path, device: str | None) -> None:
        self.good_model = good_model
        self.device = device
        self._good: Any = None

    def generator(self, path: str | Path) -> Any:
        from edgegen.runtime import Generator

        return Generator(path) if self.device is None else Generator(path, device=self.device)

    def good(self) -> Any:
        if self._good is None:
            self._good = self.generator(self.good_model)
        return self._good

    def call(self, call: Call, photo: np.ndarray) -> Outcome:
        from edgegen.runtime import EdgegenError
        from edgegen.runtime.images import read_image

        result = Outcome(call.entry, "", "failure")
        out, err = io.StringIO(), io.StringIO()
        exc: BaseException | None = None
        with (
            fresh_process_state(),
            capture_fd2() as raw,
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            try:
                if call.entry == "api-image":
                    result.command = f"Generator({self.good_model.name})(read_image({call.path!r}))"
                    image = read_image(call.path)
                    got = self.good()(image)
                    _check_output(image, got, 1)
                elif call.entry == "api-verify":
                    gen = self.generator(call.path)
                    trust = not Path(call.path).with_name(MANIFEST).is_file()
                    if trust and "require_manifest" in inspect.signature(gen.verify).parameters:
                        result.command = f"Generator({call.path!r}).verify(require_manifest=False)"
                        report = gen.verify(require_manifest=False)
                    else:
                        result.command = f"Generator({call.path!r}).verify()"
                        report = gen.verify()
                    if not report:  # a check that ran and failed: the API's exit 1
                        raise EdgegenError("verify: " + "; ".join(report.failures)[:300], 1)
                else:
                    result.command = f"Generator({call.path!r})(photo)"
                    gen = self.generator(call.path)
                    _check_output(photo, gen(photo), gen.spec.scale)
            except EdgegenError as refused:
                result.outcome = "refused"
                result.error = f"{type(refused).__name__}: {first_line(refused)}"
            except BaseException as caught:  # any other exception is the finding
                exc = caught
            else:
                result.outcome = "accepted"
        result.ort_log, stray = split_ort_log(raw())
        result.stderr = err.getvalue() + "".join(line + "\n" for line in stray)
        if exc is not None:
            result.reason = "traceback"
            result.error = f"{type(exc).__name__}: {first_line(exc)}"
            result.traceback = "".join(traceback.format_exception(exc))[-4000:]
            result.signature = _signature(exc)
        return result


class WrongOutput(AssertionError):
    """An accepted image whose output is not the image the API promises."""


def _check_output(image: np.ndarray, got: Any, scale: int) -> None:
    want = np.float32 if image.dtype.kind == "f" else image.dtype
    h, w = image.shape[:2]
    if not isinstance(got, np.ndarray) or got.dtype != want:
        raise WrongOutput(f"output {type(got).__name__} {getattr(got, 'dtype', '')}, not {want}")
    if got.shape[:2] != (h * scale, w * scale) or got.ndim != image.ndim:
        raise WrongOutput(f"output shape {got.shape} for an input of {image.shape}")


# -- the worker ----------------------------------------------------------------------------------


def load_entry(spec: str) -> Callable[[list[str]], Any]:
    """``module:attr`` -> the callable (the CLI's main, or a deliberately broken stand-in)."""
    import importlib

    module, _, attr = spec.partition(":")
    fn: Callable[[list[str]], Any] = getattr(importlib.import_module(module), attr)
    return fn


def worker(args: argparse.Namespace) -> int:
    """Run the case ids read from stdin, one JSON line on the protocol stream per start and per
    result. The protocol gets its own copy of stdout, and fd 1 is pointed at stderr, so that
    nothing a library writes below Python can corrupt it."""
    import faulthandler

    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    crash_log = os.fdopen(os.dup(2), "w")
    faulthandler.enable(file=crash_log)
    seeds = Seeds.load(Path(args.seeds))
    main = load_entry(args.entry)
    from edgegen.cli.verify import verify as verify_command

    no_manifest = any("--no-manifest" in p.opts for p in verify_command.params)
    api = Api(seeds.good_model, args.device)
    from edgegen.runtime.images import read_image

    photo = read_image(seeds.photo)
    work = Path(args.work)
    send = lambda record: proto.write(json.dumps(record) + "\n")  # noqa: E731
    send({"event": "ready", "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        case_id = int(line)
        folder = work / f"case-{case_id}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        try:
            built = build_case(seeds, args.seed, case_id, folder, no_manifest)
        except Exception as exc:  # a bug of this harness, not of edgegen: reported as such
            send({"event": "start", "id": case_id, "kind": kind_of(case_id), "mutation": "?"})
            send({"event": "result", "id": case_id, "harness_error": "".join(
                traceback.format_exception(exc))[-3000:]})  # fmt: skip
            continue
        send({"event": "start", "id": case_id, "kind": built.kind, "mutation": built.mutation,
              "layout": built.layout, "folder": str(folder),
              "calls": [c.entry for c in built.calls]})  # fmt: skip
        outcomes = []
        for call in built.calls:
            command = "edgegen " + " ".join(call.argv) if call.argv else f"{call.entry} {call.path}"
            send({"event": "call", "id": case_id, "entry": call.entry, "command": command})
            t0 = time.perf_counter()
            done = run_cli(main, call) if call.argv else api.call(call, photo)
            done.seconds = round(time.perf_counter() - t0, 4)
            outcomes.append(asdict(done))
        send({"event": "result", "id": case_id, "calls": outcomes})
        if not args.keep_cases:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


# -- the parent ----------------------------------------------------------------------------------


@dataclass
class CaseRecord:
    id: int
    kind: str
    mutation: str
    outcome: str  # accepted / refused / failure / crash / hang / harness
    layout: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    detail: str = ""  # crash: exit status and the worker's last stderr; hang: the call
    entry: str = ""  # crash, hang: the entry point it was in
    seconds: float = 0.0


@dataclass
class Report:
    seed: int
    cases: list[CaseRecord]
    seconds: float
    worker_starts: int
    replay: str = ""

    @property
    def failures(self) -> list[CaseRecord]:
        return [c for c in self.cases if c.outcome not in ("accepted", "refused")]

    def counts(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for case in self.cases:
            row = table.setdefault(case.kind, {})
            row[case.outcome] = row.get(case.outcome, 0) + 1
        return table

    def call_counts(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for case in self.cases:
            for call in case.calls:
                row = table.setdefault(call["entry"], {})
                row[call["outcome"]] = row.get(call["outcome"], 0) + 1
        return table

    def distinct(self) -> dict[str, list[tuple[CaseRecord, dict[str, Any] | None]]]:
        """Failures grouped by cause: the exception and where it was raised, or how the stderr
        broke the CLI's promise; crashes and hangs by kind and the call they were in."""
        groups: dict[str, list[tuple[CaseRecord, dict[str, Any] | None]]] = {}
        for case in self.failures:
            bad = [c for c in case.calls if c["outcome"] == "failure"]
            if case.outcome in ("crash", "hang", "harness") or not bad:
                what = case.detail.split(";")[0].split(" in ")[0]
                key = f"{case.outcome} ({case.kind}) in {case.entry or '?'}: {what}"
                groups.setdefault(key, []).append((case, None))
            for call in bad:
                groups.setdefault(call["signature"] or call["reason"], []).append((case, call))
        return dict(sorted(groups.items(), key=lambda kv: -len(kv[1])))

    def ort_log_lines(self) -> int:
        return sum(len(c["ort_log"]) for case in self.cases for c in case.calls)

    def ort_log_examples(self, n: int = 3) -> list[str]:
        """A few of onnxruntime's own log lines (ignored by the checks, but worth a look)."""
        seen: dict[str, None] = {}
        for case in self.cases:
            for call in case.calls:
                for line in call["ort_log"]:
                    seen.setdefault(f"case {case.id}: {line[:200]}", None)
        return list(seen)[:n]

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "cases": len(self.cases),
            "seconds": round(self.seconds, 1),
            "worker_starts": self.worker_starts,
            "counts": self.counts(),
            "calls": self.call_counts(),
            "ort_log_lines": self.ort_log_lines(),
            "ort_log_examples": self.ort_log_examples(),
            "distinct_failures": {
                sig: {"count": len(items), "cases": [c.id for c, _ in items][:50]}
                for sig, items in self.distinct().items()
            },
            "slowest": [
                {"id": c.id, "kind": c.kind, "seconds": c.seconds, "mutation": c.mutation[:200]}
                for c in self.slowest()
            ],
            "failures": [asdict(c) for c in self.failures],
        }

    def slowest(self, n: int = 5) -> list[CaseRecord]:
        return sorted(self.cases, key=lambda c: -c.seconds)[:n]

    def summary(self, limit: int = 40) -> str:
        lines = [
            f"edgegen fuzz: seed {self.seed}, {len(self.cases)} cases in {self.seconds:.1f} s "
            f"({self.worker_starts} worker start(s))",
            "",
            f"{'kind':<6} {'cases':>6} {'accepted':>9} {'refused':>8} {'failure':>8} "
            f"{'crash':>6} {'hang':>5}",
        ]
        for kind in KINDS:
            row = self.counts().get(kind, {})
            if not row:
                continue
            lines.append(
                f"{kind:<6} {sum(row.values()):>6} {row.get('accepted', 0):>9} "
                f"{row.get('refused', 0):>8} {row.get('failure', 0) + row.get('harness', 0):>8} "
                f"{row.get('crash', 0):>6} {row.get('hang', 0):>5}"
            )
        lines += ["", "calls:"]
        for entry, row in sorted(self.call_counts().items()):
            lines.append(f"  {entry:<10} " + ", ".join(f"{k} {v}" for k, v in sorted(row.items())))
        slow = ", ".join(f"{c.id} ({c.kind}) {c.seconds:.2f} s" for c in self.slowest(3))
        lines.append(f"slowest cases: {slow}")
        ort = self.ort_log_lines()
        if ort:
            lines.append(f"note: onnxruntime wrote {ort} log line(s) of its own (ignored), e.g.")
            lines += [f"  {line}" for line in self.ort_log_examples()]
        failures = self.failures
        lines.append("")
        if not failures:
            lines.append("no failures, crashes or hangs")
            return "\n".join(lines)
        groups = self.distinct()
        lines.append(f"{len(failures)} failing case(s), {len(groups)} distinct cause(s):")
        for sig, items in groups.items():
            case, call = items[0]
            entries = sorted({c["entry"] if c else (k.entry or "?") for k, c in items})
            cases = sorted({k.id for k, _ in items})
            lines.append(f"- {sig}")
            lines.append(f"    {len(cases)} case(s), through {', '.join(entries)}")
            lines.append(f"    e.g. case {case.id} ({case.kind}): {case.mutation[:200]}")
            if case.layout:
                lines.append(f"    layout: {case.layout}")
            if call is not None:
                lines.append(f"    command: {call['command']}")
                lines.append(f"    -> {(call['error'] or call['reason'])[:300]}")
            else:
                lines.append(f"    -> {case.detail[-600:]}")
            lines.append(f"    replay: {self.replay} --case {case.id}")
        lines += ["", "every failing case:"]
        for case in failures[:limit]:
            bad: list[dict[str, Any] | None] = [c for c in case.calls if c["outcome"] == "failure"]
            for call in bad or [None]:
                what = (call["error"] or call["reason"]) if call else case.detail.split("\n")[0]
                lines.append(
                    f"  case {case.id} {case.kind} {case.outcome}"
                    f"{' ' + call['entry'] if call else ''}: {str(what)[:200]}"
                )
        if len(failures) > limit:
            lines.append(f"  ... and {len(failures) - limit} more")
        return "\n".join(lines)


def run_fuzz(
    seed: int,
    count: int = 1000,
    *,
    ids: Sequence[int] | None = None,
    kinds: Sequence[str] = KINDS,
    timeout: float = DEFAULT_TIMEOUT,
    entry: str = ENTRY,
    device: str | None = None,
    keep: Path | None = None,
    worker_cmd: Sequence[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> Report:
    """Run ``count`` cases (or exactly ``ids``) of ``seed`` in worker subprocesses.

    ``entry`` replaces the CLI's main (``module:attr``, importable from tests/reliability),
    ``worker_cmd`` the worker's whole command line (the seed folder, work folder and options
    are appended): both let a test prove that a broken entry point or a stalled worker is
    caught. ``keep``: build the files there and leave them (replaying a case)."""
    todo = list(ids) if ids is not None else plan(count, kinds=kinds)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if keep is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edgegen-fuzz-")))
        else:
            root = keep
            root.mkdir(parents=True, exist_ok=True)
        seeds_dir = root / "seeds"
        if not (seeds_dir / "model" / MODEL).is_file():
            shutil.rmtree(seeds_dir, ignore_errors=True)
            seeds_dir.mkdir()
            build_seeds(seeds_dir)
        runner = _Runner(seed, root, seeds_dir, timeout, entry, device, keep is not None,
                         worker_cmd, log)  # fmt: skip
        cases = runner.run(todo)
    replay = f"python tests/reliability/fuzz.py --seed {seed}"
    return Report(seed, cases, time.perf_counter() - started, runner.starts, replay)


class _Runner:
    """Feeds case ids to a worker and reads its protocol lines with a timeout; a worker that
    dies or stalls mid-case is recorded and replaced, starting at the next case."""

    def __init__(
        self,
        seed: int,
        root: Path,
        seeds: Path,
        timeout: float,
        entry: str,
        device: str | None,
        keep_cases: bool,
        worker_cmd: Sequence[str] | None,
        log: Callable[[str], None] | None,
    ) -> None:
        self.seed, self.root, self.seeds, self.timeout = seed, root, seeds, timeout
        self.entry, self.device, self.keep_cases = entry, device, keep_cases
        self.worker_cmd = list(worker_cmd) if worker_cmd else None
        self.log = log or (lambda _line: None)
        self.starts = 0

    def command(self) -> list[str]:
        base = self.worker_cmd or [sys.executable, str(Path(__file__).resolve()), "--worker"]
        cmd = [*base, "--seed", str(self.seed), "--seeds", str(self.seeds), "--entry", self.entry,
               "--work", str(self.root / "work")]  # fmt: skip
        if self.device:
            cmd += ["--device", self.device]
        if self.keep_cases:
            cmd.append("--keep-cases")
        return cmd

    def run(self, todo: list[int]) -> list[CaseRecord]:
        records: dict[int, CaseRecord] = {}
        remaining = list(todo)
        while remaining:
            self.starts += 1
            if self.starts > len(todo) + 3:
                raise RuntimeError("the fuzz worker keeps failing to start")
            done = self._one_worker(remaining, records)
            remaining = [i for i in remaining if i not in done]
        return [records[i] for i in todo]

    def _one_worker(self, ids: list[int], records: dict[int, CaseRecord]) -> set[int]:
        """Run ``ids`` on one worker until it finishes, dies or stalls; returns the ids that
        are settled (recorded), including the one it died on."""
        log_path = self.root / f"worker-{self.starts}.log"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(TESTS),
               os.environ.get("PYTHONPATH", "")])}  # fmt: skip
        env.pop("PYTHONFAULTHANDLER", None)
        with open(log_path, "w") as log_file:
            proc = subprocess.Popen(
                self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file,
                text=True, env=env, cwd=self.root, start_new_session=True,
            )  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
        reader.start()
        try:
            proc.stdin.write("".join(f"{i}\n" for i in ids))
            proc.stdin.close()
        except BrokenPipeError:
            pass
        settled: set[int] = set()
        current: dict[str, Any] | None = None
        current_call = current_entry = ""
        t_start = time.perf_counter()
        ready = False
        try:
            while len(settled) < len(ids):
                wait = self.timeout if ready else max(STARTUP_TIMEOUT, self.timeout)
                if current is not None:
                    wait = max(0.0, self.timeout - (time.perf_counter() - t_start))
                try:
                    line = lines.get(timeout=wait)
                except queue.Empty:
                    line = ""
                if line is None or line == "":
                    stalled = line == ""
                    self._kill(proc)
                    status = proc.wait()
                    tail = _tail(log_path)
                    next_id = current["id"] if current else _first_unsettled(ids, settled)
                    if next_id is None:
                        break
                    base = current or {"id": next_id, "kind": kind_of(next_id), "mutation": "?"}
                    if stalled:
                        outcome = "hang"
                        what = f"no result within {self.timeout:g} s"
                        if current is None:
                            what = "the worker stalled before starting the case"
                    else:
                        outcome = "crash"
                        what = f"the worker died ({_status(status)})"
                    if current_call:
                        what += f" in {current_call}"
                    record = CaseRecord(base["id"], base["kind"], base.get("mutation", "?"),
                                        outcome, base.get("layout", ""),
                                        detail=f"{what}; worker stderr: {tail}",
                                        seconds=round(time.perf_counter() - t_start, 2),
                                        )  # fmt: skip
                    if not ready:  # nothing ran: a broken harness or environment
                        raise RuntimeError(
                            f"the fuzz worker did not start ({_status(status)}): {tail}"
                        )
                    record.entry = current_entry
                    records[record.id] = record
                    settled.add(record.id)
                    self.log(f"case {record.id}: {record.outcome}: {what}")
                    break
                event = json.loads(line)
                kind = event["event"]
                if kind == "ready":
                    ready = True
                elif kind == "start":
                    current, current_call, current_entry = event, "", ""
                    t_start = time.perf_counter()
                elif kind == "call":
                    current_call, current_entry = event["command"], event["entry"]
                elif kind == "result":
                    assert current is not None and current["id"] == event["id"], event
                    records[event["id"]] = self._record(current, event, t_start)
                    settled.add(event["id"])
                    current, current_call = None, ""
                    if len(settled) % 100 == 0:
                        self.log(f"{len(settled)} cases ...")
        finally:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)  # a worker that ran every case exits by itself
            if proc.poll() is None:
                self._kill(proc)
                proc.wait()
        return settled

    @staticmethod
    def _record(start: dict[str, Any], result: dict[str, Any], t_start: float) -> CaseRecord:
        seconds = round(time.perf_counter() - t_start, 3)
        if "harness_error" in result:
            return CaseRecord(start["id"], start["kind"], start.get("mutation", "?"), "harness",
                              detail=result["harness_error"], seconds=seconds)  # fmt: skip
        calls = result["calls"]
        outcomes = {c["outcome"] for c in calls}
        outcome = next(o for o in ("failure", "refused", "accepted") if o in outcomes)
        return CaseRecord(start["id"], start["kind"], start["mutation"], outcome,
                          start.get("layout", ""), calls, seconds=seconds)  # fmt: skip

    @staticmethod
    def _kill(proc: subprocess.Popen[str]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)  # the worker's own session: it and anything it started


def _pump(stream: Any, lines: queue.Queue[str | None]) -> None:
    for line in stream:
        if line.strip():
            lines.put(line)
    lines.put(None)


def _first_unsettled(ids: list[int], settled: set[int]) -> int | None:
    return next((i for i in ids if i not in settled), None)


def _status(code: int) -> str:
    if code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    kept = [ln for ln in text.strip().splitlines() if not ln.startswith("Extension modules:")]
    return "\n".join(kept[-lines:])


# -- command line --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=None, help="default: a random one (printed)")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--case", type=int, action="append", help="run only this case id")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="s per case")
    parser.add_argument("--json", type=Path, default=None, help="write the full report here")
    parser.add_argument("--keep", type=Path, default=None, help="build and keep files here")
    parser.add_argument("--device", default=None, help="passed to the CLI and Generator")
    parser.add_argument("--entry", default=ENTRY, help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seeds", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--work", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--keep-cases", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def cli(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    fresh = int(np.random.SeedSequence().entropy) % 10**6  # type: ignore[arg-type]
    seed = args.seed if args.seed is not None else fresh
    print(f"edgegen fuzz: seed {seed}", flush=True)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise SystemExit(f"unknown kind(s): {', '.join(sorted(unknown))}")
    report = run_fuzz(
        seed, args.count, ids=args.case, kinds=kinds, timeout=args.timeout, entry=args.entry,
        device=args.device, keep=args.keep,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )  # fmt: skip
    print(report.summary())
    if args.case:
        for case in report.cases:
            print(f"\ncase {case.id} ({case.kind}, {case.outcome}): {case.mutation}")
            if case.layout:
                print(f"  layout: {case.layout}")
            if case.detail:
                print(f"  {case.detail}")
            for call in case.calls:
                print(f"  {call['command']}\n    -> {call['outcome']} (exit {call['exit_code']})")
                texts = [call["stderr"].strip(), call["traceback"].strip()]
                if call["error"] and call["error"] not in "".join(texts):
                    texts.insert(1, call["error"])
                for text in texts:
                    if text:
                        print("    " + text.replace("\n", "\n    "))
    if args.json:
        args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n")
        print(f"report written to {args.json}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(cli())
