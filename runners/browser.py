"""The web runtime's other end in headless Chromium (``--runtimes web:chromium``).

A local server (cross-origin isolated, 127.0.0.1 only) serves a small page, ``runner.html``,
with edgegen.mjs, onnxruntime-web's WASM build and the model; the page asks the server for the
next frame (``GET /next``, held until there is one) and posts its answer (``POST /reply``), the
frames of :mod:`edgegen.runners.pipe`. So the browser runs the model exactly as a page does,
and the runner talks to it as to any other process. Chromium is Debian's ``chromium`` (or
``$EDGEGEN_CHROMIUM``); every host but 127.0.0.1 is unreachable from it.
"""

from __future__ import annotations

import io
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.web import ASSETS, ORT_FILES, BundleHandler, OrtWeb, make_server

from .pipe import FramePipe, read_part

POLL_S = 1.0  # how often a wait checks that Chromium is still there
START_TIMEOUT_S = 180.0  # to start Chromium, compile the WASM and load the model


def find_chromium() -> str:
    found = os.environ.get("EDGEGEN_CHROMIUM") or shutil.which("chromium")
    found = found or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not found:
        raise EdgegenError(
            "runtime web:chromium needs Chromium (Debian: apt-get install chromium), or "
            "EDGEGEN_CHROMIUM naming its binary"
        )
    return found


class BrowserPipe(FramePipe):
    """Frames to and from a page in headless Chromium, through a local server."""

    def __init__(self, model: Path, ort: OrtWeb, what: str) -> None:
        self.what = what
        self._requests: queue.Queue[bytes | None] = queue.Queue()
        self._replies: queue.Queue[bytes] = queue.Queue()
        self._folder = Path(tempfile.mkdtemp(prefix="edgegen-browser-"))
        for name in ("runner.html", "runner.mjs", "edgegen.mjs"):
            (self._folder / name).symlink_to(ASSETS / name)
        (self._folder / "ort").mkdir()
        for name in ORT_FILES:
            (self._folder / "ort" / name).symlink_to(ort.dist / name)
        (self._folder / model.name).symlink_to(model.resolve())
        requests, replies = self._requests, self._replies

        class Handler(BundleHandler):
            def do_GET(self) -> None:
                if self.path != "/next":
                    return super().do_GET()
                frame = requests.get()
                if frame is None:  # closing: the page stops asking
                    requests.put(None)
                    self.send_response(204)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(frame)))
                self.end_headers()
                self.wfile.write(frame)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                replies.put(self.rfile.read(length))
                self.send_response(204)
                self.end_headers()

        self._server = make_server(self._folder, 0, handler=Handler)
        # A request cut short when Chromium is closed is not an error worth a traceback.
        self._server.handle_error = lambda *_: None  # type: ignore[method-assign]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        port = self._server.server_address[1]
        self._profile = Path(tempfile.mkdtemp(prefix="edgegen-chromium-"))
        self._proc = subprocess.Popen(
            [
                find_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu",
                "--no-first-run", "--disable-background-networking", "--disable-sync",
                "--disable-component-update", f"--user-data-dir={self._profile}",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                f"http://127.0.0.1:{port}/runner.html",
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def call(self, header: dict[str, Any], payload: bytes = b"") -> tuple[dict[str, Any], bytes]:
        data = json.dumps(header).encode()
        self._requests.put(
            len(data).to_bytes(4, "little") + data + len(payload).to_bytes(4, "little") + payload
        )
        started = time.monotonic()
        while True:
            try:
                frame = self._replies.get(timeout=POLL_S)
                break
            except queue.Empty:
                if self._proc.poll() is not None:
                    code = self._proc.returncode
                    raise EdgegenError(f"{self.what}: Chromium stopped (exit {code})") from None
                if "dims" not in header and time.monotonic() - started > START_TIMEOUT_S:
                    raise EdgegenError(
                        f"{self.what}: the page did not load the model in {START_TIMEOUT_S:.0f} s"
                    ) from None
        stream = io.BytesIO(frame)
        reply = json.loads(read_part(stream))
        body = read_part(stream)
        if "error" in reply:
            raise EdgegenError(f"{self.what}: {reply['error']}")
        return reply, body

    def close(self) -> None:
        if getattr(self, "_proc", None) is None:
            return
        self._requests.put(None)
        self._proc.kill()
        self._proc.wait()
        self._server.shutdown()
        self._server.server_close()
        shutil.rmtree(self._profile, ignore_errors=True)
        shutil.rmtree(self._folder, ignore_errors=True)
        self._proc = None  # type: ignore[assignment]
