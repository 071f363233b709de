"""A runner's other end in another process (Node for the web runtime, an emulated ARM64 Python
for arm64), fed over its stdin and read from its stdout.

Every message is a frame: a little-endian uint32 length and that much JSON, then a uint32
length and that many payload bytes (float32 values, little-endian). The first request loads
the model and is answered with ``{"info": ...}``; each batch request ``{"dims": [...]}`` with
its values is answered with ``{"dims": [...]}`` and the output's values; either may be answered
``{"error": "one line"}``. stderr is kept (its last lines) to say why a process stopped.
"""

from __future__ import annotations

import collections
import contextlib
import json
import struct
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from edgegen.runtime.errors import EdgegenError

from .base import Runner, file_spec


class FramePipe:
    """Frames to something that answers them: :meth:`call` is the one thing to provide."""

    def call(self, header: dict[str, Any], payload: bytes = b"") -> tuple[dict[str, Any], bytes]:
        raise NotImplementedError

    def infer(self, x: np.ndarray) -> np.ndarray:
        """A float32 batch through the other end."""
        x = np.ascontiguousarray(x, dtype="<f4")
        reply, body = self.call({"dims": list(x.shape)}, x.tobytes())
        return np.frombuffer(body, dtype="<f4").reshape(reply["dims"]).astype(np.float32)

    def close(self) -> None:
        raise NotImplementedError


class PipeProcess(FramePipe):
    """A child process that answers frames; ``what`` names it in errors ("runtime web")."""

    def __init__(self, cmd: Sequence[str], what: str, env: dict[str, str] | None = None) -> None:
        self.what = what
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        try:
            self._proc = subprocess.Popen(
                list(cmd),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            raise EdgegenError(f"{what}: cannot start {cmd[0]}: {exc.strerror or exc}") from None
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self._stderr.append(line.decode("utf-8", "replace").rstrip())

    def call(self, header: dict[str, Any], payload: bytes = b"") -> tuple[dict[str, Any], bytes]:
        """Send one frame and read the answer; an ``error`` answer is an EdgegenError."""
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        data = json.dumps(header).encode()
        try:
            proc.stdin.write(struct.pack("<I", len(data)) + data)
            proc.stdin.write(struct.pack("<I", len(payload)))
            proc.stdin.write(payload)
            proc.stdin.flush()
            reply = json.loads(read_part(proc.stdout))
            body = read_part(proc.stdout)
        except (BrokenPipeError, EOFError, ValueError):
            with contextlib.suppress(subprocess.TimeoutExpired):  # let it say why it stopped
                proc.wait(timeout=5)
            last = next((line for line in reversed(self._stderr) if line.strip()), "")
            code = f" (exit {proc.returncode})" if proc.returncode is not None else ""
            raise EdgegenError(
                f"{self.what}: its process stopped{code}{': ' + last if last else ''}"
            ) from None
        if "error" in reply:
            raise EdgegenError(f"{self.what}: {reply['error']}")
        return reply, body

    def close(self) -> None:
        proc = self._proc
        if proc.poll() is not None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def read_part(stream: IO[bytes]) -> bytes:
    head = stream.read(4)
    if len(head) < 4:
        raise EOFError
    (length,) = struct.unpack("<I", head)
    body = stream.read(length)
    if len(body) < length:
        raise EOFError
    return body


def write_frame(stream: IO[bytes], header: dict[str, Any], payload: bytes = b"") -> None:
    """The answering side's half (a Python server): one frame, flushed."""
    data = json.dumps(header).encode()
    stream.write(struct.pack("<I", len(data)) + data + struct.pack("<I", len(payload)) + payload)
    stream.flush()


class PipeRunner(Runner):
    """A runner whose model runs in another process (:attr:`pipe`): batches go through in the
    model's layout, and :meth:`close` ends the process (and what :meth:`cleanup` removes)."""

    pipe: FramePipe | None = None
    path: Path  # always a file here

    def _open_file(self, path: Path, name: str | None) -> None:
        """The model file, checked (manifest, spec) before any process starts."""
        self.path = Path(path)
        self.name = name or self.path.name
        self.spec = file_spec(self.path)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        assert self.pipe is not None
        x = np.asarray(batch, dtype=np.float32)
        if self.spec.layout == "NHWC":
            out = self.pipe.infer(x.transpose(0, 2, 3, 1))
            return np.ascontiguousarray(out.transpose(0, 3, 1, 2))
        return self.pipe.infer(x)

    def cleanup(self) -> None:
        """What the runner leaves besides its process (nothing, unless a subclass says)."""

    def close(self) -> None:
        if self.pipe is not None:
            self.pipe.close()
        self.cleanup()

    def __del__(self) -> None:
        self.close()
