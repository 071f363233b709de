"""Generator.verify against the golden samples export wrote, without torch in the loop."""

from __future__ import annotations

import shutil
from pathlib import Path

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
    tamper(src, dst)  # no manifest beside it: the check that the weights changed is verify's
    report = Generator(dst, device="cpu").verify(require_manifest=False)
    assert not report
    assert report.failures and "LSB" in report.failures[0]
    assert "FAIL" in report.table()


def test_without_golden_samples_is_unverifiable(tmp_path):
    src = exported(("fp32", "fp16", "int8")) / "model.fp32.onnx"
    shutil.copy(src, tmp_path / "model.fp32.onnx")
    gen = Generator(tmp_path / "model.fp32.onnx", device="cpu")
    with pytest.raises(EdgegenError, match="unverifiable: no golden samples") as err:
        gen.verify(require_manifest=False)
    assert err.value.exit_code == 2
    golden_path(gen.path).write_bytes(b"not a zip")
    with pytest.raises(EdgegenError, match="unverifiable: golden samples .* unreadable") as err:
        gen.verify(require_manifest=False)
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
        Generator(dst, device="cpu").verify(require_manifest=False)


def copy_export(tmp_path: Path, precision: str = "fp32") -> Path:
    """The export folder copied, manifests and golden samples included; the copy's model."""
    shutil.copytree(exported(("fp32", "fp16", "int8")), tmp_path / "export")
    return tmp_path / "export" / f"model.{precision}.onnx"


def test_golden_samples_of_another_precision_are_refused(tmp_path: Path) -> None:
    model = copy_export(tmp_path)
    shutil.copy(golden_path(model.with_name("model.fp16.onnx")), golden_path(model))
    with pytest.raises(EdgegenError, match="does not match the manifest") as err:
        Generator(model, device="cpu").verify()
    assert err.value.exit_code == 2
    assert golden_path(model).name in str(err.value) and "manifest.json" in str(err.value)


def test_zeroed_outputs_and_a_huge_tolerance_cannot_pass(tmp_path: Path) -> None:
    """The forgery: torch outputs zeroed, tolerance 1e9. With the manifest its sha256 gives it
    away; without one (--no-manifest) the tolerance that can never fail is refused."""
    import json

    model = copy_export(tmp_path)
    golden = dict(np.load(golden_path(model)))
    meta = json.loads(golden["meta"].tobytes())
    meta["tolerance"] = {"max_lsb": 1e9, "max_pct_over_1lsb": None, "min_psnr_vs_torch": None}
    golden["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    for key in [k for k in golden if k.startswith("output_")]:
        golden[key] = np.zeros_like(golden[key])
    np.savez(golden_path(model), **golden)
    gen = Generator(model, device="cpu")
    with pytest.raises(EdgegenError, match="does not match the manifest"):
        gen.verify()
    model.with_name("model.fp32.manifest.json").unlink()
    gen = Generator(model, device="cpu")
    with pytest.raises(EdgegenError, match="max_lsb = 1000000000.0 that can never fail"):
        gen.verify(require_manifest=False)


def test_a_model_without_manifest_needs_the_opt_out_and_the_report_says_so(
    tmp_path: Path,
) -> None:
    model = copy_export(tmp_path)
    model.with_name("model.fp32.manifest.json").unlink()
    gen = Generator(model, device="cpu")
    with pytest.raises(EdgegenError, match="has no manifest .* --no-manifest"):
        gen.verify()
    report = gen.verify(require_manifest=False)
    assert report and any("not vouched for" in n for n in report.notes)
    assert "not vouched for" in report.table()
