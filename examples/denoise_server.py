"""A tiny HTTP endpoint that runs an exported edgegen model: POST an image, get the result as PNG.

    python examples/denoise_server.py runs/tour/export/model.int8.onnx --port 8000
    curl --data-binary @noisy.jpg http://127.0.0.1:8000/ -o clean.png
    curl http://127.0.0.1:8000/          # the model's spec and the providers that run it

It uses only ``edgegen.runtime`` (numpy + onnxruntime + Pillow, never torch). One ``Generator``
serves every request: it is thread-safe, so the threading server's handlers share it. A body that
is not an image gets 400 with one line naming the problem. Ctrl-C or SIGTERM stops it (exit 0).
"""

from __future__ import annotations

import argparse
import io
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgegen.runtime import EdgegenError, Generator

MAX_BODY = 50 * 1024 * 1024  # bytes; a bigger upload is refused before it is read


class Handler(BaseHTTPRequestHandler):
    generator: Generator  # set on the subclass that serve() makes

    def do_GET(self) -> None:
        info = {"spec": self.generator.spec.to_dict(), "providers": self.generator.providers}
        self._reply(200, "application/json", json.dumps(info).encode())

    def do_POST(self) -> None:
        length_header = self.headers.get("Content-Length") or "0"
        length = int(length_header) if length_header.isdigit() else 0
        if not 0 < length <= MAX_BODY:
            self.close_connection = True  # the body (if any) is left unread
            self._reply(413 if length else 400, "text/plain", b"send one image, at most 50 MB\n")
            return
        try:
            with Image.open(io.BytesIO(self.rfile.read(length))) as im:
                keep = im.mode in ("L", "RGB", "RGBA")
                image = np.asarray(im if keep else im.convert("RGB"))
            out = self.generator(image)
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, EdgegenError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._reply(400, "text/plain", f"not a usable image: {message}\n".encode())
            return
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="PNG")
        self._reply(200, "image/png", buf.getvalue())

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(model: str, host: str, port: int, device: str, threads: int | None) -> None:
    generator = Generator(model, device=device, threads=threads)
    handler = type("BoundHandler", (Handler,), {"generator": generator})
    with ThreadingHTTPServer((host, port), handler) as server:
        print(f"serving {model} on http://{host}:{server.server_port}/", flush=True)
        server.serve_forever()  # until Ctrl-C or SIGTERM; leaving the block closes the socket


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve an edgegen model over HTTP.")
    parser.add_argument("model", help="an exported model, e.g. model.int8.onnx")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or tensorrt")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        serve(args.model, args.host, args.port, args.device, args.threads)
    except (EdgegenError, OSError) as exc:  # a bad model, a port in use: one line, exit 2
        print(f"denoise_server: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (see _interrupt), at any point: a clean stop
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
