"""The arm64 runner's other end: run inside the emulated ARM64 root (where edgegen[cpu] is
installed by `make check-arm64`), it answers :mod:`edgegen.runners.pipe` frames with an
onnxruntime :class:`Generator` on the CPU.

    python -m edgegen.runners.arm64_server MODEL THREADS
"""

from __future__ import annotations

import json
import platform
import sys

import numpy as np

from edgegen.runtime.errors import EdgegenError

from .pipe import read_part, write_frame


def main() -> int:
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # stdout carries frames only
    inp = sys.stdin.buffer
    model, threads = sys.argv[1], int(sys.argv[2])
    generator = None
    while True:
        try:
            header = json.loads(read_part(inp))
            payload = read_part(inp)
        except EOFError:
            return 0
        try:
            if generator is None:
                import onnxruntime

                from edgegen.runtime import Generator

                generator = Generator(model, device="cpu", threads=threads or None, tile=0)
                info = {
                    "machine": platform.machine(),
                    "onnxruntime": onnxruntime.__version__,
                    "providers": generator.providers,
                }
                write_frame(out, {"info": info})
                continue
            x = np.frombuffer(payload, dtype="<f4").reshape(header["dims"])
            y = np.ascontiguousarray(generator.infer(x), dtype="<f4")
            write_frame(out, {"dims": list(y.shape)}, y.tobytes())
        except EdgegenError as exc:
            write_frame(out, {"error": str(exc).splitlines()[0]})
            if generator is None:
                return 2


if __name__ == "__main__":
    raise SystemExit(main())
