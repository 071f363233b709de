"""The web runtime in Node: edgegen.mjs computes what the Python runtime computes (padding,
tile grid and blend weights, the golden format), and onnxruntime-web runs exported models
through the `web` runner for verify, compare and bench."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clitools import assert_one_line_error, run_edgegen
from webtools import node_eval, ort_web_or_skip

from edgegen.runtime.model_io import pad_to_multiple
from edgegen.runtime.tiling import axis_weights, starts
from edgegen.runtime.zoo import resolve


@pytest.fixture(autouse=True)
def _node_and_ort(ort_web: Any) -> None:
    """Every test here needs Node and onnxruntime-web (skipped, saying which, without)."""


GRIDS = [
    # length, tile, overlap, margin, scale, align
    (1000, 512, 32, 8, 1, 1),
    (700, 128, 16, 4, 2, 1),
    (517, 96, 24, 11, 1, 8),  # the last tile starts aligned down, overlapping more
    (64, 128, 16, 4, 1, 1),  # one tile
    (300, 64, 48, 0, 4, 16),
]


def test_the_tile_grid_and_weights_are_the_python_runtimes_to_the_bit() -> None:
    js = node_eval(f"""
        import {{ axisWeights, tileStarts }} from "MODULE";
        const grids = {json.dumps(GRIDS)};
        const out = grids.map(([n, t, o, m, s, a]) => ({{
          starts: tileStarts(n, t, o, a),
          weights: axisWeights(n, t, o, m, s, a).map(([o0, k, w]) => [o0, k, Array.from(w)]),
        }}));
        console.log(JSON.stringify(out));
    """)
    for (n, t, o, m, s, a), got in zip(GRIDS, js, strict=True):
        assert got["starts"] == starts(n, t, o, a)
        want = axis_weights(n, t, o, m, s, a)
        assert [w[:2] for w in got["weights"]] == [[o0, k] for o0, k, _ in want]
        for (_, _, js_w), (_, _, py_w) in zip(got["weights"], want, strict=True):
            # float32 both sides: JSON carries the exact value of each
            np.testing.assert_array_equal(np.asarray(js_w, dtype=np.float32), py_w)


@pytest.mark.parametrize(("h", "w", "multiple"), [(5, 7, 4), (3, 9, 8), (16, 16, 8), (1, 6, 4)])
def test_padding_is_numpys_reflect_and_edge(h: int, w: int, multiple: int) -> None:
    x = np.arange(2 * h * w, dtype=np.float32).reshape(1, 2, h, w)
    js = node_eval(f"""
        import {{ padToMultiple }} from "MODULE";
        const r = padToMultiple(Float32Array.from({json.dumps(x.ravel().tolist())}),
                                [1, 2, {h}, {w}], {multiple});
        console.log(JSON.stringify({{ dims: r.dims, data: Array.from(r.data) }}));
    """)
    want = pad_to_multiple(x, multiple)
    assert js["dims"] == list(want.shape)
    np.testing.assert_array_equal(np.asarray(js["data"], dtype=np.float32), want.ravel())


def test_the_module_reads_golden_npz_files_as_numpy_does() -> None:
    golden = resolve("sr2:int8").with_suffix(".golden.npz")
    js = node_eval(f"""
        import {{ readNpz }} from "MODULE";
        import {{ readFileSync }} from "node:fs";
        const arrays = await readNpz(new Uint8Array(readFileSync({json.dumps(str(golden))})));
        const out = {{}};
        for (const [name, a] of arrays) {{
          let sum = 0;
          for (const v of a.data) sum += v;
          out[name] = {{ shape: a.shape, sum, first: Array.from(a.data.slice(0, 5)) }};
        }}
        console.log(JSON.stringify(out));
    """)
    with np.load(golden) as data:
        assert sorted(js) == sorted(data.files)
        for name in data.files:
            a = data[name]
            assert js[name]["shape"] == list(a.shape), name
            assert js[name]["first"] == a.ravel()[:5].tolist(), name
            assert js[name]["sum"] == pytest.approx(float(a.astype(np.float64).sum()), rel=1e-9)


def test_a_changed_model_is_refused_before_it_runs(tmp_path: Path) -> None:
    source = resolve("denoise-blind:int8")
    for suffix in (".onnx", ".manifest.json", ".golden.npz"):
        name = source.name.replace(".onnx", suffix)
        shutil.copyfile(source.parent / name, tmp_path / name)
    model = tmp_path / source.name
    raw = bytearray(model.read_bytes())
    raw[-100] ^= 0xFF
    model.write_bytes(bytes(raw))
    manifest = tmp_path / source.name.replace(".onnx", ".manifest.json")
    ort = ort_web_or_skip()
    js = node_eval(f"""
        import * as ort from {json.dumps(ort.node_entry.as_uri())};
        import {{ Generator }} from "MODULE";
        try {{
          await Generator.load(ort, {json.dumps(str(manifest))});
          console.log(JSON.stringify({{ loaded: true }}));
        }} catch (err) {{
          console.log(JSON.stringify({{ name: err.name, message: err.message }}));
        }}
    """)
    assert js["name"] == "EdgegenError"
    assert "sha256" in js["message"] and "does not match its manifest" in js["message"]
    assert "\n" not in js["message"]


@pytest.mark.parametrize("model", ["denoise-blind:int8", "denoise-blind:fp32", "sr2:int8"])
def test_verify_on_the_web_runtime_passes_the_shipped_models(model: str) -> None:
    proc = run_edgegen("verify", str(resolve(model)), "--runtime", "web")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first = proc.stdout.splitlines()[0]
    assert "onnxruntime-web wasm" in first, first
    assert proc.stdout.strip().endswith("PASS")


def test_fp32_on_the_web_runner_equals_onnxruntime_to_float_rounding() -> None:
    from edgegen.runners import onnx_runner

    path = resolve("denoise-blind:fp32")
    x = np.random.default_rng(3).random((1, 3, 37, 53), dtype=np.float32)
    web = onnx_runner(path, "web", threads=2)
    try:
        out = web.infer(x)
        info = web.info
    finally:
        web.close()  # type: ignore[attr-defined]
    native = onnx_runner(path, "onnxruntime", "cpu").infer(x)
    assert info.runtime == "web" and info.version.count(".") == 2
    assert "2 threads" in info.providers[0]
    assert out.shape == native.shape
    assert float(np.abs(out - native).max()) < 1e-4  # fp32's export tolerance (0.0255 LSB)


def test_compare_puts_the_web_runtime_beside_onnxruntime(tmp_path: Path) -> None:
    folder = resolve("denoise-blind:int8").parent
    report = tmp_path / "report.json"
    proc = run_edgegen(
        "compare", "--reference", str(folder / "model.fp32.onnx"), str(folder),
        "--runtimes", "onnxruntime,web", "--sizes", "48", "--repeats", "1",
        "--max-lsb", "40", "--format", "json", "--output", str(report),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    variants = json.loads(report.read_text())["variants"]
    seen = {(v["name"], v["runtime"]): v for v in variants}
    assert {("model.int8.onnx", "web"), ("model.int8.onnx", "onnxruntime")} <= set(seen)
    web_fp32 = seen["model.fp32.onnx", "web"]
    # the reference's own graph on another runtime: float rounding, at most one pixel step
    assert all(row["max_lsb"] <= 1.0 for row in web_fp32["rows"])
    assert "onnxruntime-web wasm" in web_fp32["providers_ran"][0]


def test_a_missing_onnxruntime_web_is_one_line(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("EDGEGEN_ORT_WEB", str(tmp_path))
    proc = run_edgegen("verify", str(resolve("sr2:int8")), "--runtime", "web")
    assert_one_line_error(proc, "not onnxruntime-web's package folder")


def test_export_web_writes_a_page_whose_models_verify_in_node(tmp_path: Path) -> None:
    """`edgegen export --web` packs what it just exported; the module verifies each model
    there, from the files the page serves."""
    from tinymodels import tiny_checkpoint

    ckpt = tiny_checkpoint(tmp_path / "run")
    page = tmp_path / "page"
    proc = run_edgegen(
        "export", str(ckpt), "--out", str(tmp_path / "export"), "--precision", "fp32,fp16,int8",
        "--calib-count", "4", "--no-progress", "--web", str(page),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"wrote {page}" in proc.stdout
    index = json.loads((page / "edgegen-web.json").read_text())
    assert [m["precision"] for m in index["models"]] == ["fp32", "fp16", "int8"]
    ort = ort_web_or_skip()
    manifests = [str(page / m["manifest"]) for m in index["models"]]
    js = node_eval(f"""
        import * as ort from {json.dumps(ort.node_entry.as_uri())};
        import {{ Generator }} from "MODULE";
        const out = [];
        for (const manifest of {json.dumps(manifests)}) {{
          const gen = await Generator.load(ort, manifest, {{ threads: 1 }});
          out.push(await gen.verify());
        }}
        console.log(JSON.stringify(out));
    """)
    assert [r["precision"] for r in js] == ["fp32", "fp16", "int8"]
    for report in js:
        assert report["passed"] is True, report["failures"]
        assert report["rows"]


def test_the_guides_node_example_runs_as_written(tmp_path: Path, ort_web: Any) -> None:
    """docs/guide/web.md's JavaScript, in a folder where `onnxruntime-web` resolves as it
    does in a user's project (node_modules), beside a page `edgegen web` wrote."""
    import re

    guide = (Path(__file__).resolve().parents[2] / "docs" / "guide" / "web.md").read_text()
    (code,) = re.findall(r"```js\n(.*?)```", guide, flags=re.S)
    assert run_edgegen("web", "denoise-blind", "-o", str(tmp_path / "page")).returncode == 0
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "onnxruntime-web").symlink_to(ort_web.root)
    (tmp_path / "app.mjs").write_text(code)
    proc = subprocess.run(
        ["node", "app.mjs"], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "verified"


def test_webgpu_falls_back_to_wasm_saying_why(tmp_path: Path, ort_web: Any) -> None:
    manifest = resolve("denoise-blind:int8").with_suffix(".manifest.json")
    js = node_eval(f"""
        import * as ort from {json.dumps(ort_web.node_entry.as_uri())};
        import {{ Generator }} from "MODULE";
        const logs = [];
        const gen = await Generator.load(ort, {json.dumps(str(manifest))},
                                         {{ backend: "webgpu", log: (l) => logs.push(l) }});
        const report = await gen.verify();
        console.log(JSON.stringify({{ logs, backend: gen.info.backend, passed: report.passed }}));
    """)
    assert js["backend"] == "wasm" and js["passed"] is True
    assert js["logs"] == ["WebGPU unavailable on this device (no adapter); running on wasm"]
