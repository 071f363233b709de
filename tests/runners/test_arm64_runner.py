"""The arm64 runtime: onnxruntime for aarch64 in the emulated Debian root `make check-arm64`
builds, driven through the runner interface, so compare and verify hold ARM64 to the same
tolerances. A machine without that root (or not root) skips these tests and says why; CI builds
the root in `make check-arm64` on the same machine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from clitools import assert_one_line_error, run_edgegen

from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.zoo import resolve


def root_or_skip() -> None:
    from edgegen.runners.arm64 import arm64_root

    try:
        arm64_root()
    except EdgegenError as exc:
        pytest.skip(str(exc))


def test_verify_on_arm64_passes_the_shipped_int8_model() -> None:
    root_or_skip()
    proc = run_edgegen("verify", str(resolve("sr2:int8")), "--runtime", "arm64")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(aarch64, emulated)" in proc.stdout.splitlines()[0]
    assert proc.stdout.strip().endswith("PASS")


def test_arm64_computes_fp32_as_x86_does_to_float_rounding() -> None:
    root_or_skip()
    from edgegen.runners import onnx_runner

    path = resolve("denoise-blind:fp32")
    x = np.random.default_rng(5).random((1, 3, 24, 40), dtype=np.float32)
    arm = onnx_runner(path, "arm64", threads=1)
    try:
        out = arm.infer(x)
        info = arm.info
    finally:
        arm.close()  # type: ignore[attr-defined]
    native = onnx_runner(path, "onnxruntime", "cpu").infer(x)
    assert info.runtime == "arm64" and info.providers == [
        "CPUExecutionProvider (aarch64, emulated)"
    ]
    assert float(np.abs(out - native).max()) < 1e-4


def test_compare_holds_arm64_to_the_thresholds(tmp_path: Path) -> None:
    root_or_skip()
    folder = resolve("denoise-blind:int8").parent
    report = tmp_path / "r.json"
    proc = run_edgegen(
        "compare", "--reference", str(folder / "model.fp32.onnx"), str(folder / "model.int8.onnx"),
        "--runtimes", "onnxruntime,arm64", "--sizes", "32", "--repeats", "1", "--min-psnr", "60",
        "--format", "json", "--output", str(report),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr  # int8 is not 60 dB from fp32 ...
    failures = json.loads(report.read_text())["failures"]
    assert any("arm64" in f for f in failures), failures  # ... on ARM64 either, and it says so


def test_without_the_root_it_says_how_to_build_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEGEN_ARM64_CACHE", str(tmp_path))
    proc = run_edgegen("verify", str(resolve("sr2:int8")), "--runtime", "arm64")
    assert_one_line_error(proc, "needs the emulated ARM64 root", "make check-arm64")
