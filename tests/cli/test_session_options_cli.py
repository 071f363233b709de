"""`edgegen run` and `edgegen bench` with the session options (--io-binding, --cuda-graph, ...),
in subprocesses: honoured on the CPU where they can be, refused in one line where not."""

from __future__ import annotations

import json

import numpy as np
from clitools import assert_one_line_error, run_edgegen
from PIL import Image
from tinymodels import exported, photo

from edgegen.runtime.images import read_image


def test_run_honours_io_binding_and_refuses_cuda_graph_on_the_cpu(tmp_path):
    model = str(exported(("fp32",)) / "model.fp32.onnx")
    src = tmp_path / "in" / "photo.png"
    src.parent.mkdir()
    Image.fromarray(photo(2)[:60, :90]).save(src)

    proc = run_edgegen("run", model, str(src), "-o", str(tmp_path / "g"), "--device", "cpu",
                       "--cuda-graph")  # fmt: skip
    assert_one_line_error(proc, "cuda_graph cannot apply on the CPU")
    assert not (tmp_path / "g").exists()  # refused before anything was written

    plain = run_edgegen("run", model, str(src), "-o", str(tmp_path / "a"), "--device", "cpu")
    bound = run_edgegen("run", model, str(src), "-o", str(tmp_path / "b"), "--device", "cpu",
                        "--io-binding", "--no-cpu-mem-arena")  # fmt: skip
    assert plain.returncode == 0 and bound.returncode == 0, plain.stderr + bound.stderr
    a, b = read_image(tmp_path / "a" / "photo.png"), read_image(tmp_path / "b" / "photo.png")
    assert a.shape == (60, 90, 3)
    np.testing.assert_array_equal(a, b)


def test_bench_records_the_session_options(tmp_path):
    model = str(exported(("fp32",)) / "model.fp32.onnx")
    out = tmp_path / "bench.json"
    proc = run_edgegen("bench", model, "--providers", "cpu", "--sizes", "32", "--rounds", "1",
                       "--io-binding", "--cuda-graph", "--json", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    # --cuda-graph is for the GPU providers of the list; on the CPU, io_binding still applies
    assert result["settings"]["session"] == {
        "io_binding": True,
        "cuda_graph": True,
        "cpu_mem_arena": True,
    }
    assert result["rows"][0]["median_ms"] > 0
    proc = run_edgegen("bench", model, "--cudnn-conv-algo-search", "fastest")
    assert proc.returncode == 2 and "fastest" in proc.stderr
