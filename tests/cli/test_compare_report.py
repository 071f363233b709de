"""`edgegen compare --report DIR`: one self-contained offline HTML page, as a user gets it."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
from clitools import assert_one_line_error, run_edgegen
from PIL import Image
from tinymodels import exported, run_compare

from edgegen.evaluation.report import colormap, heatmap, latency_svg

IMG = re.compile(r'<img class="(\w+)" alt="([^"]*)" width="(\d+)" height="(\d+)" src="([^"]+)"')
PHOTOS = 3  # the bundled held-out photos


def _out() -> Path:
    return exported(("fp32", "fp16", "int8"))


def _decode(uri: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix), uri[:40]
    im = Image.open(io.BytesIO(base64.b64decode(uri[len(prefix) :], validate=True)))
    im.load()
    assert im.format == "PNG"
    return im


def test_report_is_self_contained_and_matches_the_json(tmp_path):
    out = _out()
    ref = str(out / "model.fp32.onnx")
    report, data_file = tmp_path / "report", tmp_path / "r.json"
    # 200x220 crops are larger than the report's 192x192 crops; 37x53 is the smaller size.
    proc = run_edgegen("compare", "--reference", ref, str(out), "--sizes", "37x53,200x220",
                       "--providers", "cpu", "--repeats", "1", "--format", "json",
                       "--output", str(data_file), "--report", str(report))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    page = report / "index.html"
    assert str(page) in proc.stderr
    text = page.read_text(encoding="utf-8")
    assert not list(report.glob(".*.tmp"))
    data = json.loads(data_file.read_text())

    # Offline: nothing fetched from anywhere.
    assert "http://" not in text and "https://" not in text
    assert not re.search(r"""(src|href)\s*=\s*(?!["']?data:)""", text)
    assert "<script" not in text and "<link" not in text and "@import" not in text
    assert "Content-Security-Policy" in text

    # One section per variant x provider, in the JSON's order.
    names = [f"{v['name']} on {v['provider']}" for v in data["variants"]]
    assert len(names) == 3
    sections = text.split('<section class="variant"')[1:]
    assert len(sections) == len(names)
    for name, section in zip(names, sections, strict=True):
        assert f"<h2>{name} " in section

    # Embedded PNGs decode to the expected sizes: 5 per photo per variant, and a colour bar.
    images = IMG.findall(text)
    crops = [i for i in images if i[0] in ("crop", "heatmap")]
    assert len(crops) == len(names) * PHOTOS * 5
    for kind, alt, width, height, uri in images:
        im = _decode(uri)
        assert im.size == (int(width), int(height)), alt
        if kind in ("crop", "heatmap"):
            assert im.size == (192, 192) and im.mode == "RGB", (alt, im.size, im.mode)
    assert sum(i[0] == "colorbar" for i in images) == 1
    for section in sections:
        for photo in data["settings"]["photos"]:
            assert f"{photo} (200x220, center 192x192)" in section
        assert section.count("error heatmap") == PHOTOS
        assert re.search(r"\|variant - reference\|, 0 to [0-9.e+-]+ LSB", section)

    # The latency chart, and the metric values the JSON reports, formatted as in the table.
    assert "<svg" in text and "</svg>" in text
    int8 = next(v for v in data["variants"] if v["precision"] == "int8")
    int8_section = next(s for s in sections if "model.int8.onnx on cpu" in s)
    for row in int8["rows"]:
        assert f"<td>{row['psnr_vs_ref']:.2f}</td>" in int8_section
        assert f"<td>{row['max_lsb']:.3f}</td>" in int8_section
        assert f"<td>{row['gt_psnr']:.2f}</td>" in text
    assert f"{int8['latency_p50_ms']:.2f}" in text and f"{int8['latency_p95_ms']:.2f}" in text


def test_a_broken_threshold_still_writes_the_report(tmp_path):
    out = _out()
    report = tmp_path / "deep" / "report"
    proc = run_edgegen("compare", "--reference", str(out / "model.fp32.onnx"),
                       str(out / "model.int8.onnx"), "--sizes", "37x53", "--providers", "cpu",
                       "--repeats", "1", "--min-psnr", "200", "--report", str(report))  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "--min-psnr" in proc.stderr
    text = (report / "index.html").read_text(encoding="utf-8")
    assert '<span class="fail">FAIL</span>' in text and "--min-psnr 200" in text
    crops = [i for i in IMG.findall(text) if i[0] == "crop"]
    assert len(crops) == PHOTOS * 4
    assert all(_decode(i[4]).size == (53, 37) for i in crops)


def test_report_into_a_file_is_a_usage_error(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    out = _out()
    proc = run_edgegen("compare", "--reference", str(out / "model.fp32.onnx"),
                       str(out / "model.fp16.onnx"), "--report", str(target))  # fmt: skip
    assert_one_line_error(proc, "--report", "is a file")


def test_colormap_heatmap_and_chart_units():
    ramp = colormap(np.array([0.0, 0.5, 1.0, 2.0, -1.0], dtype=np.float32))
    assert ramp.dtype == np.uint8 and ramp.shape == (5, 3)
    assert tuple(ramp[0]) == (0, 0, 4) and tuple(ramp[2]) == (252, 255, 164)
    assert tuple(ramp[3]) == tuple(ramp[2]) and tuple(ramp[4]) == tuple(ramp[0])
    err = np.array([[0.0, 4.0]], dtype=np.float32)
    hm = heatmap(err, 4.0)
    assert tuple(hm[0, 0]) == (0, 0, 4) and tuple(hm[0, 1]) == (252, 255, 164)
    assert tuple(heatmap(np.zeros((1, 1), np.float32), 0.0)[0, 0]) == (0, 0, 4)
    svg = latency_svg(["a <b>", "c"], [1.0, 2.0], [1.5, 3.0])
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "a &lt;b&gt;" in svg and svg.count("<rect") == 2 + 4


def test_sr_crops_line_up_on_the_scale_grid(tmp_path):
    """x2 SR: the degraded input is shown at the output's size, every crop the same size."""
    from edgegen.evaluation.report import write_report

    out = exported(("fp32",), scale=2)
    model = out / "model.fp32.onnx"
    result = run_compare(model, [model], sizes=[(101, 150)], repeats=1, crops=True)
    assert result.passed and result.scale == 2 and len(result.crops) == PHOTOS
    for crop, var in zip(result.crops, result.variants[0].crops, strict=True):
        assert crop.reference.shape == var.shape == crop.clean.shape == (192, 192, 3)
        assert crop.degraded.shape == (96, 96, 3)
    text = write_report(result, tmp_path).read_text(encoding="utf-8")
    for kind, alt, _, _, uri in IMG.findall(text):
        if kind != "colorbar":
            assert _decode(uri).size == (192, 192), alt
    assert "0 to 1 LSB (max here 0)" in text  # identical outputs: a 1 LSB scale, all black


def _built_result(thresholds, failures=()):  # type: ignore[no-untyped-def]
    """A CompareResult made by hand (no model runs): one int8 variant at one size, no crops."""
    from edgegen.evaluation.compare import CompareResult, SizeRow, VariantResult

    row = SizeRow(size="37x53", images=3, max_lsb=1.5, mean_lsb=0.1, pct_over_1lsb=0.2,
                  psnr_vs_ref=45.0, ssim_vs_ref=None, gt_psnr=29.0, gt_ssim=None,
                  ref_gt_psnr=29.1, ref_gt_ssim=None, gt_psnr_drop=0.1, latency_p50_ms=1.0,
                  latency_p95_ms=1.2)  # fmt: skip
    variant = VariantResult(failures=list(failures), name="model.int8.onnx",
                            path="model.int8.onnx", precision="int8", provider="cpu",
                            providers_ran=["CPUExecutionProvider"], model_bytes=1000,
                            first_call_ms=3.0, latency_p50_ms=1.0, latency_p95_ms=1.2,
                            rows=[row])  # fmt: skip
    reference = {"name": "model.fp32.onnx", "kind": "onnx",
                 "providers_ran": ["CPUExecutionProvider"], "latency_p50_ms": 2.0,
                 "latency_p95_ms": 2.5,
                 "rows": [{"size": "37x53", "images": 3, "gt_psnr": 29.1,
                           "gt_ssim": None}]}  # fmt: skip
    settings = {"photos": ["chelsea"], "sizes": ["37x53"], "providers": ["cpu"], "repeats": 1,
                "thresholds": thresholds.to_dict()}  # fmt: skip
    return CompareResult(settings, reference, [variant])


def _headline(text: str) -> str:
    match = re.search(r"<h1>edgegen compare: (.*?)</h1>", text)
    assert match, text[:300]
    return match.group(1)


def test_report_lists_the_thresholds_that_were_set():
    from edgegen.evaluation.compare import Thresholds
    from edgegen.evaluation.report import render_report

    text = render_report(_built_result(Thresholds(max_lsb=2.0, min_psnr=40.0)))
    line = re.search(r'<p class="thresholds">(.*?)</p>', text)
    assert line, text
    assert line.group(1) == (
        "thresholds: max LSB ≤ 2 (--max-lsb), PSNR vs reference ≥ 40 dB (--min-psnr)"
    )
    assert "None" not in text and "{&#x27;" not in text and "max_lsb" not in text
    assert _headline(text) == '<span class="pass">PASS</span>'

    text = render_report(_built_result(Thresholds(max_psnr_drop=0.25)))
    assert "PSNR vs ground truth at most 0.25 dB below the reference&#x27;s" in text


def test_report_without_thresholds_says_so_instead_of_pass(tmp_path, capsys):
    from edgegen.cli.compare import _print
    from edgegen.evaluation.compare import Thresholds
    from edgegen.evaluation.formats import render
    from edgegen.evaluation.report import render_report

    result = _built_result(Thresholds())
    assert result  # nothing failed: still truthy, the exit code stays 0
    text = render_report(result)
    assert _headline(text) == '<span class="unchecked">no thresholds set</span>'
    assert "<title>edgegen compare: no thresholds set</title>" in text
    assert 'class="pass"' not in text and "PASS" not in text  # nor in the variant's heading
    assert "<h2>model.int8.onnx on cpu " in text
    assert re.search(r"\.unchecked\{color:#555;", text)  # grey, not the green of .pass
    assert (
        '<p class="thresholds">no thresholds set (--max-lsb, --min-psnr, --max-psnr-drop)' in text
    )

    # The terminal says the same: the table's last line, and the line after --output.
    assert render(result, "table").splitlines()[-1] == "no thresholds set"
    assert render(result, "markdown").splitlines()[-1] == "- no thresholds set"
    _print(result, "json", tmp_path / "r.json")
    assert (
        capsys.readouterr().out == f"no thresholds set: report written to {tmp_path / 'r.json'}\n"
    )
    assert json.loads((tmp_path / "r.json").read_text())["passed"] is True

    checked = _built_result(Thresholds(max_lsb=64))
    assert render(checked, "table").splitlines()[-1] == "PASS"
    broken = _built_result(Thresholds(max_lsb=1), ["model.int8.onnx on cpu at 37x53: too far"])
    assert render(broken, "table").splitlines()[-1] == "FAIL"
    page = render_report(broken)
    assert _headline(page) == '<span class="fail">FAIL</span>'
    assert '<h2>model.int8.onnx on cpu <span class="fail">FAIL</span></h2>' in page
