"""Shared helpers for the web target's tests and benchmark: Node snippets against edgegen.mjs, a
local server that takes the page's report, headless Chromium driving the page.

A machine without Node, npm's onnxruntime-web or Chromium skips what needs them and says which
is missing; `.ci/run` installs Chromium and `make install` runs `npm ci`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from edgegen.runtime.errors import EdgegenError

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "runtime" / "web" / "edgegen.mjs"
NODE = shutil.which("node")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def ort_web_or_skip() -> Any:
    from edgegen.runtime.web import find_ort_web

    if NODE is None:
        pytest.skip("Node.js is not installed")
    try:
        return find_ort_web()
    except EdgegenError as exc:
        pytest.skip(f"onnxruntime-web is not installed (make install runs npm ci): {exc}")


def node_eval(script: str, timeout: float = 120) -> Any:
    """Run an ES module snippet in Node (edgegen.mjs importable as ``MODULE``); its stdout is
    parsed as JSON."""
    assert NODE is not None
    proc = subprocess.run(
        [NODE, "--input-type=module", "-e", script.replace("MODULE", MODULE.as_uri())],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def noisy_photo(
    path: Path,
    name: str = "coffee.png",
    box: tuple[int, int, int, int] = (40, 90, 232, 346),
    sigma: float = 25.0,
) -> np.ndarray:
    """A crop of a held-out bundled photo with σ noise, clipped and rounded to 8 bits as a
    noisy photo on disk holds it, saved as PNG; returns its RGBA pixels as Pillow reads them."""
    from edgegen.evaluation.photos import bundled_paths

    source = next(p for p in bundled_paths("val") if p.name == name)
    y0, x0, y1, x1 = box
    clean = np.asarray(Image.open(source).convert("RGB"))[y0:y1, x0:x1].astype(np.float64)
    noise = np.random.default_rng(7).normal(0.0, sigma, clean.shape)
    noisy = np.clip(np.rint(clean + noise), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(path)
    return np.asarray(Image.open(path).convert("RGBA"))


class Reports:
    """What pages POST to /report, and every request the server answered."""

    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []
        self.requests: list[tuple[str, int]] = []
        self.event = threading.Event()


def serve(root: Path, isolate: bool = True) -> tuple[Any, Reports]:
    from edgegen.runtime.web import BundleHandler, make_server

    reports = Reports()

    class Handler(BundleHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            reports.posted.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()
            reports.event.set()

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            reports.requests.append((self.path, int(code) if str(code).isdigit() else 0))

    server = make_server(root, 0, isolate=isolate, handler=Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, reports


def open_page(
    root: Path, query: str, profile: Path, *, isolate: bool = True, timeout: float = 240
) -> tuple[dict[str, Any], Reports]:
    """Open ``root``'s page in headless Chromium with ``query`` (+ ``report=/report``), every
    host but 127.0.0.1 unreachable, and return what the page POSTed."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    server, reports = serve(root, isolate)
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html?{query}&report=/report"
    proc = subprocess.Popen(
        [
            CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--user-data-dir={profile}", url,
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        started = time.monotonic()
        while not reports.event.wait(0.5):
            if proc.poll() is not None or time.monotonic() - started > timeout:
                break
    finally:
        proc.kill()
        _, err = proc.communicate()
        server.shutdown()
        server.server_close()
    assert reports.posted, f"the page posted no report; chromium said: {err[-2000:]}"
    return reports.posted[0], reports


def rgba_of(report: dict[str, Any]) -> np.ndarray:
    import base64

    out = report["output"]
    raw = np.frombuffer(base64.b64decode(out["rgba"]), dtype=np.uint8)
    return raw.reshape(out["height"], out["width"], 4)
