"""The page `edgegen web` writes, in headless Chromium with every host but localhost unreachable:
it checks each model against its golden samples on the device, denoises (and upscales) a real
held-out photo to within the precision's tolerance of the native runtime, uses WASM threads
where the page is cross-origin isolated, says so when it is not, and refuses a changed model."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clitools import assert_one_line_error, run_edgegen
from PIL import Image
from webtools import open_page, rgba_of

from edgegen.runtime import Generator
from edgegen.runtime.golden import load_golden
from edgegen.runtime.metrics import error_stats, limit_failures
from edgegen.runtime.zoo import resolve


def native(model: str, photo: Path, tile: int = 0) -> np.ndarray:
    """What `edgegen run` computes for the photo (onnxruntime on this CPU)."""
    image = np.asarray(Image.open(photo).convert("RGBA"))
    return Generator(resolve(model), device="cpu", tile=tile)(image)


def within_tolerance(model: str, web: np.ndarray, ref: np.ndarray) -> list[str]:
    """The page's pixels against the native runtime's, held to the limits export stored for the
    precision (its golden samples' tolerance, which is against PyTorch)."""
    tolerance = load_golden(resolve(model).with_suffix(".golden.npz")).tolerance
    stats = error_stats([web[..., :3] / 255.0], [ref[..., :3] / 255.0])
    # Both sides are 8-bit pixels: fp32's 0.0255 LSB cannot be met by rounding to whole steps,
    # so the same graph on two runtimes may differ by one step where a value sits on a boundary
    # (measured through /255 and back, one step is 1 LSB give or take float rounding).
    max_lsb = tolerance.get("max_lsb")
    return limit_failures(
        model,
        stats,
        None if max_lsb is None else max(1.0 + 1e-6, max_lsb),
        tolerance.get("max_pct_over_1lsb"),
        tolerance.get("min_psnr_vs_torch"),
    )


CASES = [
    # model, query, tile
    ("denoise-blind:int8", "model=0&threads=2", 0),
    ("denoise-blind:fp32", "model=denoise-blind%20fp32&threads=2", 0),
    ("sr2:int8", "model=2&threads=2&tile=64", 64),  # scale 2, tiled: the blend is the runtime's
]


@pytest.mark.parametrize(("model", "query", "tile"), CASES, ids=[c[0] for c in CASES])
def test_the_page_runs_a_real_photo_as_the_native_runtime_does(
    page: Path, tmp_path: Path, model: str, query: str, tile: int
) -> None:
    report, served = open_page(page, f"{query}&photo=photo.png", tmp_path / "profile")
    assert "error" not in report, report.get("error")
    info = report["info"]
    assert info["runtime"] == "onnxruntime-web" and info["backend"] == "wasm"
    assert info["crossOriginIsolated"] is True and info["threads"] == 2
    assert info["precision"] == model.split(":")[1]
    # the golden samples, run in the page on this device, meet the precision's tolerance
    check = report["verify"]
    assert check["passed"] is True, check["failures"]
    assert check["rows"] and all(r["images"] >= 1 for r in check["rows"])
    # the page saw the photo's own pixels (no colour management on the way in) ...
    photo = np.asarray(Image.open(page / "photo.png").convert("RGBA"))
    assert report["input"]["sha256"] == hashlib.sha256(photo.tobytes()).hexdigest()
    # ... and computed what the native runtime computes, to the precision's tolerance
    web = rgba_of(report)
    ref = native(model, page / "photo.png", tile)
    assert web.shape == ref.shape
    assert within_tolerance(model, web, ref) == []
    assert np.array_equal(web[..., 3], ref[..., 3])
    # nothing was fetched that the folder does not hold, nothing failed
    assert all(code in (200, 204) for _, code in served.requests), served.requests
    assert report["logs"] == []


def test_without_cross_origin_isolation_the_page_says_it_runs_on_one_thread(
    page: Path, tmp_path: Path
) -> None:
    report, _ = open_page(page, "model=0&threads=2", tmp_path / "profile", isolate=False)
    assert report["info"]["crossOriginIsolated"] is False
    assert report["info"]["threads"] == 1
    assert any("threads unavailable" in line and "Cross-Origin" in line for line in report["logs"])
    assert report["verify"]["passed"] is True


def test_a_model_changed_after_export_is_refused_in_the_page(page: Path, tmp_path: Path) -> None:
    copy = tmp_path / "page"
    shutil.copytree(page, copy)
    model = copy / "models" / "denoise-blind" / "model.int8.onnx"
    raw = bytearray(model.read_bytes())
    raw[-64] ^= 0x01
    model.write_bytes(bytes(raw))
    report, _ = open_page(copy, "model=0", tmp_path / "profile")
    assert "sha256" in report["error"] and "does not match its manifest" in report["error"]
    assert "\n" not in report["error"]


def test_the_page_folder_is_what_pack_says(page: Path) -> None:
    index = json.loads((page / "edgegen-web.json").read_text())
    assert index["format"] == "edgegen-web/1"
    for entry in index["models"]:
        manifest = json.loads((page / entry["manifest"]).read_text())
        folder = (page / entry["manifest"]).parent
        data = (folder / manifest["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == manifest["sha256"]
        assert (folder / manifest["golden"]["file"]).is_file()
    assert (page / index["onnxruntime_web"]["module"]).is_file()
    # no page file names another host: everything it loads is in the folder
    for name in ("index.html", "app.mjs", "edgegen.mjs"):
        text = (page / name).read_text()
        assert "http://" not in text and "https://" not in text, name


def test_a_folder_of_other_files_is_not_replaced(tmp_path: Path, ort_web: Any) -> None:
    out = tmp_path / "site"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    proc = run_edgegen("web", "denoise-blind", "-o", str(out))
    assert_one_line_error(proc, "not an edgegen page")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_a_page_is_replaced_whole_by_a_new_one(tmp_path: Path, ort_web: Any) -> None:
    out = tmp_path / "site"
    assert run_edgegen("web", "denoise-blind", "sr2", "-o", str(out)).returncode == 0
    assert (out / "models" / "sr2").is_dir()
    assert run_edgegen("web", "denoise-blind", "-o", str(out)).returncode == 0
    assert not (out / "models" / "sr2").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no temporary left


def test_the_chromium_runner_computes_what_node_does_bit_for_bit(ort_web: Any) -> None:
    """`--runtimes web:chromium` runs edgegen.mjs in the browser (cross-origin isolated: two
    threads); the WASM kernels are the same as in Node, and so is every output value."""
    from webtools import CHROMIUM

    from edgegen.runners import onnx_runner

    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    x = np.random.default_rng(11).random((1, 3, 40, 56), dtype=np.float32)
    for model in ("denoise-blind:fp32", "sr2:int8"):
        browser = onnx_runner(resolve(model), "web:chromium", threads=2)
        node = onnx_runner(resolve(model), "web", threads=2)
        try:
            assert browser.info.runtime == "web:chromium"
            assert browser.info.providers == ["onnxruntime-web wasm (2 threads, chromium)"]
            np.testing.assert_array_equal(browser.infer(x), node.infer(x))
        finally:
            browser.close()  # type: ignore[attr-defined]
            node.close()  # type: ignore[attr-defined]


def test_verify_in_chromium_passes_and_names_the_browser(ort_web: Any) -> None:
    from webtools import CHROMIUM

    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    proc = run_edgegen("verify", str(resolve("denoise-blind:int8")), "--runtime", "web:chromium")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "chromium" in proc.stdout.splitlines()[0] and proc.stdout.strip().endswith("PASS")
