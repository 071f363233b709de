"""examples/denoise_server.py, run as a user would: a real process, a tiny exported model, real
photos over HTTP, and a clean shutdown."""

from __future__ import annotations

import http.client
import io
import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from clitools import child_env
from PIL import Image
from tinymodels import exported

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "examples" / "denoise_server.py"


def _held_out_file(name: str) -> Path:
    from edgegen.evaluation.photos import BUNDLED_HELD_OUT, bundled_paths

    assert name in BUNDLED_HELD_OUT
    return next(p for p in bundled_paths("val") if p.name == name)


@pytest.fixture(scope="module")
def model() -> Path:
    return exported(("fp32",)) / "model.fp32.onnx"


@pytest.fixture(scope="module")
def server(model: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    cmd = [sys.executable, str(SERVER), str(model), "--port", "0", "--device", "cpu"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env()
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # printed once the socket is bound
    assert line.startswith("serving "), (line, proc.stderr.read() if proc.stderr else "")
    url = line.split(" on ", 1)[1].strip()
    try:
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _post(url: str, body: bytes) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def _bare_onnxruntime(model: Path, image: np.ndarray) -> np.ndarray:
    """The model on a plain onnxruntime session, then the mean matching every Gaussian
    denoiser's image output gets (tests/runtime/test_means.py tests it on its own): the output
    the server must send back."""
    import onnxruntime as ort

    from edgegen.runtime.means import match_means

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    x = (image.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    (y,) = session.run(["output"], {"input": x})
    matched = match_means(image, y[0].transpose(1, 2, 0))
    out: np.ndarray = np.clip(np.rint(matched * 255.0), 0, 255).astype(np.uint8)
    return out


def test_get_describes_the_model(server: tuple[subprocess.Popen[str], str]) -> None:
    _, url = server
    with urllib.request.urlopen(url, timeout=60) as reply:
        info = json.loads(reply.read())
    assert info["spec"]["task"] == "denoise"
    assert info["spec"]["precision"] == "fp32"
    assert info["providers"] == ["CPUExecutionProvider"]


@pytest.mark.parametrize("name", ["coffee.png", "rocket.jpg"])
def test_post_a_photo_returns_the_models_output(
    server: tuple[subprocess.Popen[str], str], model: Path, name: str
) -> None:
    _, url = server
    path = _held_out_file(name)
    status, content_type, body = _post(url, path.read_bytes())
    assert status == 200, body[:200]
    assert content_type == "image/png"
    out = np.asarray(Image.open(io.BytesIO(body)))
    photo = np.asarray(Image.open(path).convert("RGB"))
    assert out.shape == photo.shape
    expected = _bare_onnxruntime(model, photo)
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1


def test_bad_bodies_get_one_line_and_the_server_keeps_serving(
    server: tuple[subprocess.Popen[str], str],
) -> None:
    proc, url = server
    status, _, body = _post(url, b"this is not an image")
    assert status == 400
    assert body.decode().count("\n") == 1 and body.startswith(b"not a usable image")
    status, _, body = _post(url, b"")
    assert status == 400
    for length, expected in [("60000000", 413), ("abc", 400)]:  # over 50 MB; not a number
        host, port = url.split("//", 1)[1].rstrip("/").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.putrequest("POST", "/")
        conn.putheader("Content-Length", length)
        conn.endheaders()
        assert conn.getresponse().status == expected
        conn.close()
    assert proc.poll() is None
    with urllib.request.urlopen(url, timeout=60) as reply:
        assert reply.status == 200


def test_sigterm_stops_it_cleanly(model: Path) -> None:
    cmd = [sys.executable, str(SERVER), str(model), "--port", "0", "--device", "cpu"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env()
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("serving ")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_a_missing_model_is_one_line_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.onnx"
    proc = subprocess.run(
        [sys.executable, str(SERVER), str(missing), "--port", "0"],
        capture_output=True, text=True, timeout=120, env=child_env(),
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"denoise_server: error: model {missing}: no such file"]


def test_it_never_imports_torch() -> None:
    probe = (
        "import runpy, sys; runpy.run_path(sys.argv[1], run_name='example'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx')))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(SERVER)],
        capture_output=True, text=True, timeout=120, env=child_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
