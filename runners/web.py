"""onnxruntime-web (WASM, SIMD, threads) in Node or in headless Chromium: what a browser page or
a Node app runs.

``web`` (``web:node``) starts ``node`` on :file:`edgegen/runtime/web/node_runner.mjs`, which
loads the model through the same ES module the page uses (``edgegen.mjs``), and sends it batches
over a pipe; ``web:chromium`` runs that module in headless Chromium
(:mod:`edgegen.runners.browser`), cross-origin isolated, so WASM threads run there as in a
page served with the right headers.
It needs Node.js 18+ and onnxruntime-web installed with npm
(:func:`edgegen.runtime.web.find_ort_web` says where it looks). Latency includes the copy
through the pipe (about a millisecond for a 256×256 image, against hundreds for the model).
``threads``: onnxruntime-web's WASM threads (its default when not given).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.files import sha256_file
from edgegen.runtime.web import ASSETS, find_node, find_ort_web

from .base import RunnerInfo
from .browser import BrowserPipe
from .pipe import PipeProcess, PipeRunner

HOSTS = ("node", "chromium")


class WebRunner(PipeRunner):
    """An ONNX file on onnxruntime-web's WASM backend, in Node (``host="node"``) or in headless
    Chromium (``host="chromium"``)."""

    def __init__(
        self,
        path: Path,
        device: str = "cpu",
        *,
        name: str | None = None,
        threads: int | None = None,
        host: str = "node",
        **_onnxruntime_options: Any,
    ) -> None:
        if device not in ("cpu", "auto", "wasm"):
            raise EdgegenError(f"runtime web runs on the CPU (WASM), not {device!r}")
        if host not in HOSTS:
            raise EdgegenError(f"runtime web runs in {' or '.join(HOSTS)}, not {host!r}")
        self._host = host
        self._open_file(path, name)
        ort = find_ort_web()
        if host == "chromium":
            self.pipe = BrowserPipe(self.path, ort, "runtime web:chromium")
        else:
            node = find_node()
            self.pipe = PipeProcess(
                [node, str(ASSETS / "node_runner.mjs"), str(ort.node_entry)], "runtime web"
            )
        manifest = {
            "file": self.path.name,
            "sha256": sha256_file(self.path),
            "spec": json.loads(self.spec.to_json()),
            "precision": self.spec.precision,
        }
        hello: dict[str, Any] = {"manifest": manifest, "threads": threads or 0}
        if host == "node":  # the page's own address is the base in a browser
            hello["base"] = self.path.resolve().parent.as_uri() + "/"
        try:
            reply, _ = self.pipe.call(hello)
        except EdgegenError:
            self.close()
            raise
        info = reply["info"]
        self._info = info
        self._version = f"{info.get('version', '?')}"
        self._threads = int(info.get("threads") or 0)
        self.logs: list[str] = list(info.get("logs", []))

    @property
    def info(self) -> RunnerInfo:
        threads = f"{self._threads} thread{'s' if self._threads != 1 else ''}"
        runtime = "web" if self._host == "node" else f"web:{self._host}"
        return RunnerInfo(
            runtime,
            self._version,
            "cpu",
            [f"onnxruntime-web wasm ({threads}, {self._host})"],
            self.spec.precision,
        )
