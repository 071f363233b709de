"""Generator.verify against the golden samples export wrote, without torch in the loop."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from tinymodels import exported, tamper

from edgegen.runtime import EdgegenError, Generator
from edgegen.runtime.golden import golden_path


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_verify_passes_on_each_export(precision):
    path = exported(("fp32", "fp16", "int8")) / f"model.{precision}.onnx"
    report = Generator(path, device="cpu").verify()
    assert report, report.table()
    assert report.precision == precision and report.providers == ["CPUExecutionProvider"]
    assert {r.size for r in report.rows} == {"37x53", "96x128"}
    assert all(r.psnr_vs_torch > 35 for r in report.rows)
    assert "PASS" in report.table()
    if precision == "fp32":
        assert all(r.max_lsb <= 0.0255 for r in report.rows)
    if precision == "int8":  # the ground-truth drop cannot be checked here; the 35 dB can
        assert report.tolerance["min_psnr_vs_torch"] == 35.0
        assert any("max_gt_psnr_drop" in n for n in report.notes)


def test_verify_fails_after_a_weight_changes(tmp_path):
    src = exported(("fp32", "fp16", "int8")) / "model.fp32.onnx"
    dst = tmp_path / "model.fp32.onnx"
    tamper(src, dst)
    report = Generator(dst, device="cpu").verify()
    assert not report
    assert report.failures and "LSB" in report.failures[0]
    assert "FAIL" in report.table()


def test_without_golden_samples_is_unverifiable(tmp_path):
    src = exported(("fp32", "fp16", "int8")) / "model.fp32.onnx"
    shutil.copy(src, tmp_path / "model.fp32.onnx")
    gen = Generator(tmp_path / "model.fp32.onnx", device="cpu")
    with pytest.raises(EdgegenError, match="unverifiable") as err:
        gen.verify()
    assert err.value.exit_code == 2
    golden_path(gen.path).write_bytes(b"not a zip")
    with pytest.raises(EdgegenError, match="unverifiable") as err:
        gen.verify()
    assert err.value.exit_code == 2


def test_golden_without_a_device_checkable_limit_is_unverifiable(tmp_path):
    import json

    src = exported(("fp32", "fp16", "int8")) / "model.fp32.onnx"
    dst = tmp_path / "model.fp32.onnx"
    shutil.copy(src, dst)
    golden = dict(np.load(golden_path(src)))
    meta = json.loads(golden["meta"].tobytes())
    meta["tolerance"] = {"max_gt_psnr_drop": 0.25}  # ground truth only: nothing to check here
    golden["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(golden_path(dst), **golden)
    with pytest.raises(EdgegenError, match="unverifiable.*no limit a device can check"):
        Generator(dst, device="cpu").verify()
