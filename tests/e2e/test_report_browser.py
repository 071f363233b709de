"""The compare report, opened as a person would: in headless Chromium, with a screenshot.

.ci/run installs Debian's chromium; on a machine without it this test is skipped, saying so.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from clitools import run_edgegen
from tinymodels import exported

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
def test_report_renders_in_chromium_without_console_errors(tmp_path):
    from PIL import Image

    out = exported(("fp32", "fp16", "int8"))
    report = tmp_path / "report"
    proc = run_edgegen(
        "compare", "--reference", str(out / "model.fp32.onnx"), str(out), "--sizes", "37x53,96x128",
        "--report", str(report),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    shot = tmp_path / "shot.png"
    browser = subprocess.run(
        [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr",
            "--v=0", "--window-size=1280,2000", f"--screenshot={shot}",
            (report / "index.html").as_uri(),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shot.is_file(), browser.stderr[-2000:]
    console = [line for line in browser.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console
    with Image.open(shot) as img:
        pixels = np.asarray(img.convert("L"))
    assert pixels.shape == (2000, 1280)
    # Rendered content, not a blank page: many distinct grey levels (photos, heatmaps, text).
    assert len(np.unique(pixels)) > 50
