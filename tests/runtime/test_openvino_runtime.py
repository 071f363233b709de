"""OpenVINO as a second runtime for the same ONNX files: the Generator on it, edgegen run, verify,
compare and bench across runtimes, on a tiny exported denoiser and real photos."""

from __future__ import annotations

import functools
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clitools import assert_one_line_error, child_env, run_edgegen
from PIL import Image
from tinymodels import exported, photo

# OpenVINO runs in child processes only: its TBB threads in a pytest worker make a later fork
# there (a PyTorch DataLoader's workers) crash the worker. The runtime guide warns users alike.
if importlib.util.find_spec("openvino") is None:
    pytest.skip("edgegen[openvino] is part of the dev install", allow_module_level=True)


def in_child(code: str, **values: Any) -> Any:
    """Run ``code`` in a fresh Python with ``values`` bound; it sets ``result`` (JSON)."""
    bound = "".join(f"{k} = {v!r}\n" for k, v in values.items())
    script = bound + textwrap.dedent(code) + "\nimport json; print(json.dumps(result))\n"
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=child_env(),
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@functools.cache
def capabilities() -> frozenset[str]:
    return frozenset(
        in_child(
            """
            import openvino as ov
            result = [str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")]
            """
        )
    )


def bf16() -> bool:
    return "BF16" in capabilities()


@pytest.fixture(scope="module")
def models() -> Path:
    return exported(("fp32", "fp16", "int8"))


def a_photo() -> np.ndarray:
    """A held-out photo (rocket) crop, odd sizes."""
    return np.ascontiguousarray(photo(1)[:133, :201])


def test_openvino_f32_computes_what_onnxruntime_does(models, tmp_path):
    np.save(tmp_path / "photo.npy", a_photo())
    found = in_child(
        """
        import numpy as np
        from edgegen.runtime.generator import Generator
        image = np.load(photo)
        result = {}
        for precision in ("fp32", "fp16", "int8"):
            path = f"{folder}/model.{precision}.onnx"
            here = Generator(path, "cpu", runtime="onnxruntime")
            there = Generator(path, "cpu", runtime="openvino")
            x = here._to_model(image.astype(np.float32) / 255.0)
            diff = float(np.abs(here.infer(x) - there.infer(x)).max()) * 255
            result[precision] = [there.providers, diff, bool(there.verify())]
        """,
        folder=str(models), photo=str(tmp_path / "photo.npy"),
    )  # fmt: skip
    for precision, (providers, diff, verified) in found.items():
        assert providers == ["OpenVINO CPU (f32)"]
        # float rounding for fp32/fp16; int8: both run QDQ, rounding may flip a few steps
        assert diff < (0.01 if precision != "int8" else 6.0), (precision, diff)
        assert verified, precision  # the golden samples export wrote, on OpenVINO


def test_tiles_on_openvino_match_the_whole_image(models, tmp_path):
    np.save(tmp_path / "big.npy", np.ascontiguousarray(np.tile(a_photo(), (3, 3, 1))[:380, :560]))
    shape, diff = in_child(
        """
        import numpy as np
        from edgegen.runtime.generator import Generator
        big = np.load(image)
        whole = Generator(path, "cpu", tile=0, runtime="openvino")(big)
        tiled = Generator(path, "cpu", tile=128, runtime="openvino")(big)
        result = [list(whole.shape), int(np.abs(whole.astype(int) - tiled).max())]
        """,
        path=str(models / "model.fp32.onnx"), image=str(tmp_path / "big.npy"),
    )  # fmt: skip
    assert shape == [380, 560, 3] and diff <= 1


def test_bf16_runs_in_bf16_and_verify_says_what_it_costs(models):
    if not bf16():
        pytest.skip("this CPU has no bf16 (OpenVINO lists none)")
    providers, diff = in_child(
        """
        import numpy as np
        from edgegen.runtime.generator import Generator
        x = np.random.default_rng(0).random((1, 3, 48, 64), dtype=np.float32)
        f32 = Generator(path, "cpu", runtime="openvino").infer(x)
        gen = Generator(path, "cpu", runtime="openvino:bf16")
        result = [gen.providers, float(np.abs(gen.infer(x) - f32).max())]
        """,
        path=str(models / "model.fp32.onnx"),
    )  # fmt: skip
    assert providers == ["OpenVINO CPU (bf16)"]
    assert diff > 1e-4  # not f32 in disguise
    # fp32's golden tolerance is float rounding: bf16 breaks it, and verify says so (exit 1).
    proc = run_edgegen("verify", str(models / "model.fp32.onnx"), "--runtime", "openvino:bf16")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "on OpenVINO CPU (bf16)" in proc.stdout and "FAIL" in proc.stdout
    ok = run_edgegen("verify", str(models / "model.int8.onnx"), "--runtime", "openvino:bf16")
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_verify_says_which_openvino_path_ran_and_why(models):
    """onnxruntime's OpenVINO EP plugin runs the model where it lists a CPU device; elsewhere
    OpenVINO's own API does, and verify names the reason (the plugin missing, or listing no
    device: this machine's AMD CPU). What the plugin lists is asked of onnxruntime here."""
    listed = in_child(
        """
        import importlib.util
        result = None
        if importlib.util.find_spec("onnxruntime_ep_openvino") is not None:
            import onnxruntime as ort, onnxruntime_ep_openvino as plugin
            ort.register_execution_provider_library("OpenVINOExecutionProvider",
                                                    plugin.get_library_path())
            result = [str(d.device.type) for d in ort.get_ep_devices()
                      if d.ep_name == "OpenVINOExecutionProvider"]
        """
    )
    proc = run_edgegen("verify", str(models / "model.int8.onnx"), "--runtime", "openvino")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    notes = [line for line in proc.stdout.splitlines() if "ran it" in line]
    assert len(notes) == 1, proc.stdout
    if listed is None:
        assert "OpenVINO's own API ran it" in notes[0] and "not installed" in notes[0]
    elif not any(t.endswith("CPU") for t in listed):
        assert "OpenVINO's own API ran it" in notes[0] and "lists no CPU device" in notes[0]
    else:
        assert "onnxruntime's OpenVINO EP plugin ran it" in notes[0]
    # bf16 is OpenVINO's API's alone: the plugin offers no such precision.
    why = in_child(
        """
        from edgegen.runtime.openvino_session import openvino_ep
        result = openvino_ep("cpu", "bf16").why
        """
    )
    assert why == "onnxruntime's OpenVINO EP offers no bf16 precision"


def test_a_16_bit_precision_the_cpu_lacks_is_refused(models):
    lacking = [p for p, c in (("bf16", "BF16"), ("f16", "FP16")) if c not in capabilities()]
    if not lacking:
        pytest.skip("this CPU computes in both bf16 and f16")
    for precision in lacking:
        proc = run_edgegen(
            "verify", str(models / "model.fp32.onnx"), "--runtime", f"openvino:{precision}"
        )
        assert_one_line_error(proc, f"cannot compute in {precision}", "use openvino (f32)")


def test_edgegen_run_on_openvino_with_and_without_the_cluster(models, tmp_path):
    source = tmp_path / "photo.png"
    Image.fromarray(a_photo()).save(source)
    model = str(models / "model.int8.onnx")
    base = run_edgegen("run", model, str(source), "-o", str(tmp_path / "ort"))
    here = run_edgegen(
        "run", model, str(source), "-o", str(tmp_path / "ov"), "--runtime", "openvino"
    )
    assert base.returncode == 0 and here.returncode == 0, here.stderr
    a = np.asarray(Image.open(tmp_path / "ort" / "photo.png"), dtype=int)
    b = np.asarray(Image.open(tmp_path / "ov" / "photo.png"), dtype=int)
    assert a.shape == b.shape and np.abs(a - b).max() <= 6
    pytest.importorskip("distributed")
    far = run_edgegen(
        "run", model, str(source), "-o", str(tmp_path / "dask"), "--runtime", "openvino",
        "--engine", "dask", "--workers", "1",
    )  # fmt: skip
    assert far.returncode == 0, far.stderr
    written = (tmp_path / "dask" / "photo.png").read_bytes()
    assert written == (tmp_path / "ov" / "photo.png").read_bytes()


def test_compare_across_runtimes_is_one_table_and_one_gate(models, tmp_path):
    runtimes = "onnxruntime,openvino" + (",openvino:bf16" if bf16() else "")
    proc = run_edgegen(
        "compare", "--reference", str(models / "model.fp32.onnx"), str(models / "model.fp32.onnx"),
        "--runtimes", runtimes, "--sizes", "37x53", "--repeats", "1", "--format", "json",
        "--output", str(tmp_path / "c.json"), "--max-lsb", "0.05", "--report", str(tmp_path / "r"),
    )  # fmt: skip
    result = json.loads((tmp_path / "c.json").read_text())
    ran = [(v["runtime"], v["passed"]) for v in result["variants"]]
    assert ran[:2] == [("onnxruntime", True), ("openvino", True)], ran
    assert result["settings"]["runtimes"] == runtimes.split(",")
    page = (tmp_path / "r" / "index.html").read_text()
    assert "model.fp32.onnx on openvino (cpu)" in page
    if bf16():  # bf16 is not within 0.05 LSB of fp32: the gate fails on that runtime alone
        assert ran[2] == ("openvino:bf16", False)
        assert proc.returncode == 1
        assert "model.fp32.onnx on openvino:bf16 (cpu)" in proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr


def test_bench_across_runtimes(models, tmp_path):
    out = tmp_path / "b.json"
    proc = run_edgegen(
        "bench", str(models / "model.int8.onnx"), str(models / "model.fp32.onnx"), "--sizes",
        "32", "--rounds", "1", "--runtimes", "onnxruntime,openvino", "--threads", "1",
        "--json", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["rows"]
    assert sorted((r["model"], r["runtime"]) for r in rows) == [
        ("model.fp32.onnx", "onnxruntime"),
        ("model.fp32.onnx", "openvino"),
        ("model.int8.onnx", "onnxruntime"),
        ("model.int8.onnx", "openvino"),
    ]
    assert "openvino" in proc.stdout.splitlines()[2] or "openvino" in proc.stdout


def test_openvino_not_installed_is_one_line(models, tmp_path):
    """As on a machine with edgegen[cpu] only: the import fails, the message says what to do."""
    code = (
        "import sys; sys.modules['openvino'] = None\n"
        "from edgegen.cli.main import main\n"
        f"sys.argv = ['edgegen', 'verify', {str(models / 'model.fp32.onnx')!r}, '--runtime', "
        "'openvino']\n"
        "main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), timeout=120
    )
    assert_one_line_error(proc, "openvino runtime is not installed", "edgegen[openvino]")


def test_the_onnx_reference_evaluator_arbitrates_small_inputs(models, tmp_path):
    """onnx's reference evaluator as a third runtime: the fp32 file computes what onnxruntime
    computes; an operator it lacks at the file's opset is one line naming it."""
    proc = run_edgegen(
        "compare", "--reference", str(models / "model.fp32.onnx"), str(models / "model.fp32.onnx"),
        "--runtimes", "onnxruntime,onnx-reference", "--sizes", "37x53", "--repeats", "1",
        "--max-lsb", "0.01", "--format", "json", "--output", str(tmp_path / "c.json"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    variants = json.loads((tmp_path / "c.json").read_text())["variants"]
    assert [v["runtime"] for v in variants] == ["onnxruntime", "onnx-reference"]
    assert variants[1]["providers_ran"] == ["ReferenceEvaluator"]
    int8 = run_edgegen("verify", str(models / "model.int8.onnx"), "--runtime", "onnx-reference")
    assert_one_line_error(int8, "onnx-reference cannot run model.int8.onnx", "DequantizeLinear")
