"""compare: real tiny exports vs their fp32 reference, on the bundled held-out photos."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from tinymodels import exported, run_compare, tamper, tiny_checkpoint

from edgegen.evaluation.compare import (
    ROW_KEYS,
    VARIANT_KEYS,
    Thresholds,
    onnx_reference,
)
from edgegen.evaluation.formats import render
from edgegen.evaluation.samples import parse_sizes
from edgegen.runtime import EdgegenError
from edgegen.runtime.metrics import psnr

SIZES = parse_sizes("37x53,96x128")


def _out():
    return exported(("fp32", "fp16", "int8"))


def test_three_variants_pass_loose_thresholds():
    out = _out()
    limits = Thresholds(max_lsb=64, min_psnr=30, max_psnr_drop=0.5)
    result = run_compare(out / "model.fp32.onnx", [out], sizes=SIZES, thresholds=limits, repeats=1)
    assert result, result.failures
    assert [v.precision for v in result.variants] == ["fp16", "fp32", "int8"]
    assert all(v.provider == "cpu" and v.providers_ran == ["CPUExecutionProvider"]
               for v in result.variants)  # fmt: skip
    fp32 = result.variants[1]
    assert all(r.max_lsb == 0 and r.psnr_vs_ref == 150.0 for r in fp32.rows)  # identical copy
    assert {r.size for r in fp32.rows} == {"37x53", "96x128"}
    for v in result.variants:
        assert v.model_bytes > 0 and v.first_call_ms > 0 and v.latency_p95_ms >= v.latency_p50_ms
        for r in v.rows:
            assert r.images == 3
            assert r.ssim_vs_ref is not None and r.gt_ssim is not None  # skimage in dev env
            assert r.gt_psnr_drop == pytest.approx(r.ref_gt_psnr - r.gt_psnr)


def test_tight_threshold_fails_naming_variant_provider_size():
    out = _out()
    result = run_compare(
        out / "model.fp32.onnx", [out / "model.int8.onnx"], sizes=SIZES,
        thresholds=Thresholds(max_lsb=0.5), repeats=1,
    )  # fmt: skip
    assert not result
    assert any("model.int8.onnx on cpu at 37x53" in f and "--max-lsb" in f for f in result.failures)
    assert "FAIL" in render(result, "table")


def test_tampered_variant_is_caught(tmp_path):
    out = _out()
    bad = tmp_path / "model.fp32.onnx"
    tamper(out / "model.fp32.onnx", bad)
    result = run_compare(
        out / "model.fp32.onnx", [bad], sizes=SIZES, thresholds=Thresholds(max_lsb=0.0255),
        repeats=1,
    )  # fmt: skip
    assert not result and len(result.failures) == 2


def test_metrics_agree_with_skimage():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from edgegen.evaluation.compare import compare_outputs, run_samples
    from edgegen.evaluation.samples import make_samples

    out = _out()
    ref = onnx_reference(out / "model.fp32.onnx")
    var = onnx_reference(out / "model.fp32.onnx")  # any runner will do
    samples = make_samples(ref.spec, "bundled", [(37, 53)])
    a = run_samples(ref, samples, 1).outputs
    b = [np.clip(o + np.float32(0.01), 0, 1) for o in run_samples(var, samples, 1).outputs]

    def ssim(x, y):
        return float(structural_similarity(x, y, data_range=1.0, channel_axis=2))

    (row,) = compare_outputs(samples, a, b, ssim)
    gt = np.mean(
        [
            peak_signal_noise_ratio(s.clean, o, data_range=1.0)
            for s, o in zip(samples, b, strict=True)
        ]
    )
    assert row.gt_psnr == pytest.approx(gt, abs=1e-6)
    assert row.psnr_vs_ref == pytest.approx(
        peak_signal_noise_ratio(np.concatenate([x.ravel() for x in a]),
                                np.concatenate([x.ravel() for x in b]), data_range=1.0), abs=1e-6
    )  # fmt: skip
    assert row.max_lsb == pytest.approx(
        max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True)) * 255
    )
    assert row.ref_gt_psnr == pytest.approx(
        np.mean([psnr(s.clean, o) for s, o in zip(samples, a, strict=True)])
    )


def test_json_keys_are_stable_and_markdown_has_a_header():
    out = _out()
    result = run_compare(out / "model.fp32.onnx", [out / "model.fp16.onnx"], sizes=SIZES, repeats=1)
    data = json.loads(render(result, "json"))
    assert list(data) == ["settings", "reference", "variants", "failures", "passed"]
    (v,) = data["variants"]
    assert tuple(v) == VARIANT_KEYS
    assert all(tuple(r) == ROW_KEYS for r in v["rows"])
    assert data["settings"]["sizes"] == ["37x53", "96x128"]
    assert data["reference"]["kind"] == "onnx"
    md = render(result, "markdown").splitlines()
    assert md[0].startswith("| variant | runtime | provider | size |")
    assert md[1].startswith("|---|")


def test_checkpoint_reference(tmp_path):
    out = _out()
    ckpt = tiny_checkpoint(tmp_path / "run")  # the same seed and config as the export's
    result = run_compare(
        tmp_path / "run", [out / "model.fp32.onnx"], sizes=SIZES,
        thresholds=Thresholds(max_lsb=0.0255), repeats=1,
    )  # fmt: skip
    assert result, result.failures
    assert result.reference["kind"] == "checkpoint" and ckpt.exists()


def test_input_errors():
    out = _out()
    with pytest.raises(EdgegenError, match="no such file"):
        run_compare(out / "nope.onnx", [out], sizes=SIZES)
    with pytest.raises(EdgegenError, match="not an .onnx file"):
        run_compare(out / "model.fp32.onnx", [out / "model.fp32.manifest.json"], sizes=SIZES)
    with pytest.raises(EdgegenError, match="unknown provider"):
        run_compare(out / "model.fp32.onnx", [out], devices=["tpu"], sizes=SIZES)
    with pytest.raises(EdgegenError, match="fp16; the reference must be fp32"):
        run_compare(out / "model.fp16.onnx", [out], sizes=SIZES)
    with pytest.raises(EdgegenError, match="bad size"):
        parse_sizes("12y")


def test_compare_module_stays_torch_free():
    code = (
        "import sys\n"
        "import edgegen.evaluation.compare, edgegen.evaluation.report\n"
        "import edgegen.evaluation.bench, edgegen.evaluation.layers\n"
        "from edgegen.evaluation.degrade import degradation_from_spec\n"
        "from edgegen.runtime.spec import ModelSpec\n"
        "spec = ModelSpec(task='denoise', degradation={'kind': 'gaussian_noise', 'sigma': 25.0})\n"
        "degradation_from_spec(spec.degradation)\n"
        "heavy = {'torch', 'onnx'} & {m.split('.')[0] for m in sys.modules}\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
