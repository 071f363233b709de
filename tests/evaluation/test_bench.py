"""edgegen bench: FLOP counting, the timing table and its failure paths."""

from __future__ import annotations

import json
import re

import pytest
from clitools import assert_one_line_error, run_edgegen
from tinymodels import exported

from edgegen.evaluation.bench import BenchResult, BenchRow, bench, conv_gflop, matmul_ceiling
from edgegen.runners import onnx_runner
from edgegen.runtime.spec import ModelSpec


def spec(channels: int, blocks: int, scale: int = 1) -> ModelSpec:
    params = {"channels": channels, "blocks": blocks, "scale": scale, "in_channels": 3,
              "out_channels": 3}  # fmt: skip
    return ModelSpec(task="sr" if scale > 1 else "denoise", scale=scale, arch_params=params)


def test_conv_gflop_by_hand():
    # small at 256x256: 9 * (3*32 + 2*8*32*32 + 32*32 + 32*3) MACs per pixel, 2 FLOP per MAC.
    assert conv_gflop(spec(32, 8), 256, 256) == pytest.approx(2 * 9 * 17600 * 65536 / 1e9)
    # x2: the sub-pixel conv (32 -> 128) at low resolution and the tail at 4x the pixels.
    per_px = 9 * (3 * 4 + 2 * 4 * 4 + 4 * 4) + 9 * 4 * 16 + 4 * 9 * 4 * 3
    assert conv_gflop(spec(4, 1, 2), 10, 10, batch=3) == pytest.approx(2 * per_px * 100 * 3 / 1e9)
    assert conv_gflop(ModelSpec(task="denoise", arch="user_net"), 8, 8) is None


def test_bench_rows_and_ratios(tmp_path):
    out = exported(("fp32", "fp16", "int8"))
    models = sorted(out.glob("model.*.onnx"))
    runners = [onnx_runner(m, threads=1) for m in models]
    result = bench(runners, [(32, 48)], [1, 2], rounds=1, threads=1)
    assert len(result.rows) == 3 * 2
    fp32_rows = [r for r in result.rows if r.model == "model.fp32.onnx"]
    assert all(r.speedup == pytest.approx(1.0) for r in fp32_rows)
    for r in result.rows:
        assert r.median_ms > 0 and r.p95_ms >= r.median_ms * 0.5
        assert r.images_per_s == pytest.approx(r.batch * 1000 / r.median_ms)
        assert r.gflop is not None and r.gflop_per_s == pytest.approx(
            r.gflop / (r.median_ms / 1000)
        )
    assert result.ceiling_gflop_per_s is not None and result.ceiling_gflop_per_s > 1
    data = result.to_dict()
    assert set(data) == {"settings", "ceiling_gflop_per_s", "rows"}
    assert "vs fp32" in result.table()


def test_matmul_ceiling_is_a_rate():
    assert 1 < matmul_ceiling(threads=1, n=256, repeats=2) < 1e5


def test_bench_cli_writes_json_and_refuses_bad_input(tmp_path):
    out = exported(("fp32", "fp16", "int8"))
    target = tmp_path / "bench.json"
    proc = run_edgegen("bench", str(out / "model.fp32.onnx"), "--sizes", "32", "--rounds", "1",
                       "--threads", "1", "--json", str(target))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(target.read_text())["rows"]
    assert [r["size"] for r in rows] == ["32x32"]
    assert_one_line_error(run_edgegen("bench", str(tmp_path / "nope.onnx")), "nope.onnx")
    assert_one_line_error(
        run_edgegen("bench", str(out / "model.fp32.onnx"), "--providers", "cuda"), "CUDA"
    )
    assert_one_line_error(run_edgegen("bench", str(out), "--batch", "0"), "--batch")


def test_bench_times_the_checkpoint_in_pytorch(tmp_path):
    from tinymodels import tiny_checkpoint

    from edgegen.cli.bench import torch_runners
    from edgegen.export.transaction import ExportConfig, export_checkpoint

    ckpt = tiny_checkpoint(tmp_path / "run")
    export_checkpoint(ckpt, ExportConfig(out=str(tmp_path / "out"), verify=False))
    runners = [onnx_runner(tmp_path / "out" / "model.fp32.onnx", threads=1), *torch_runners(ckpt)]
    result = bench(runners, [(24, 24)], [1], rounds=1, threads=1)
    names = [r.model for r in result.rows]
    assert names == ["model.fp32.onnx", "torch eager", "torch channels_last"]
    assert all(r.speedup is not None and r.speedup > 0 for r in result.rows)


def _ends(line: str) -> list[int]:
    """Where each run of non-blanks ends: a right-aligned column's right edge."""
    return [m.end() for m in re.finditer(r"\S+", line)]


def test_bench_table_columns_line_up_when_values_are_missing():
    def row(model, provider, gflop, rate, pct, speedup):  # type: ignore[no-untyped-def]
        return BenchRow(model, provider, "256x256", 1, 12.345, 13.5, 81.0, gflop, rate, pct,
                        speedup)  # fmt: skip

    result = BenchResult({}, 150.0, [
        row("model.fp32.onnx", "cpu", 1.15, 93.2, 62.1, 1.0),
        row("user_net.int8.onnx", "cpu", None, None, None, 2.5),  # an architecture without FLOPs
        row("realesrgan-x4plus-anime.fp16.onnx", "cuda", 1.15, 1234.5, None, None),
    ])  # fmt: skip
    lines = result.table().splitlines()
    header, rows, ceiling = lines[0], lines[1:4], lines[4]
    assert ceiling.startswith("ceiling: ")
    # Right-aligned columns: every row ends its cells where the others do, the header too.
    edges = _ends(rows[0])
    assert len(edges) == 12
    assert all(_ends(r) == edges for r in rows), "\n".join(lines)
    assert set(edges) <= set(_ends(header)), "\n".join(lines)
    assert len({len(line) for line in (header, *rows)}) == 1
    # The missing values are placeholders at their columns' edges, under their headers.
    for name, k in (("GFLOP", 8), ("GFLOP/s", 9), ("% ceil", 10)):
        end = header.index(name) + len(name)
        assert end == edges[k]
        assert rows[1][end - 1] == "-" and rows[1][end - 2] == " "
    assert rows[2][edges[10] - 1] == "-" and rows[2].endswith(" -")
    assert rows[0].endswith("1.00x") and rows[1].endswith("2.50x")
