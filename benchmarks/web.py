"""onnxruntime-web (WASM) against native onnxruntime on this CPU, side by side in one run.

For each model and thread count, two comparisons:

- ``node``: the model's raw inference on a 1x3xSxS tensor, onnxruntime-web in Node (the ``web``
  runner) against onnxruntime's CPU provider in this process, timed in alternating blocks
  (:func:`edgegen.evaluation.timing.time_alternating`), medians;
- ``chromium``: the page `edgegen web` writes, in headless Chromium, served cross-origin
  isolated from localhost: ``Generator.run`` on an SxS noisy photo (pixels in, pixels out,
  its JavaScript pre- and post-processing included), ``--rounds`` times after one untimed
  run, against the Python ``Generator`` on the same photo timed just before and just after
  the page (median of both).

The JSON records every time, the medians and each ratio web / native (above 1: slower).

    .venv/bin/python benchmarks/web.py [--models models/denoise-blind/model.fp32.onnx,...]
        [--threads 1,2] [--size 256] [--rounds 8] [--json benchmarks/results/web-cpu.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _machine import describe
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from webtools import noisy_photo, open_page  # noqa: E402 - the page driver the tests use

from edgegen.evaluation.timing import time_alternating  # noqa: E402
from edgegen.runners import onnx_runner  # noqa: E402
from edgegen.runtime import Generator  # noqa: E402
from edgegen.runtime.web import find_ort_web  # noqa: E402

DEFAULT_MODELS = "models/denoise-blind/model.fp32.onnx,models/denoise-blind/model.int8.onnx"


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000.0


def node_vs_native(model: Path, threads: int, size: int, rounds: int) -> dict[str, Any]:
    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    web = onnx_runner(model, "web", threads=threads)
    native = onnx_runner(model, "onnxruntime", "cpu", threads=threads)
    try:
        times = time_alternating(
            {"web": lambda: web.infer(x), "onnxruntime": lambda: native.infer(x)},
            rounds=rounds,
            block=3,
        )
    finally:
        web.close()  # type: ignore[attr-defined]
    web_ms, native_ms = median_ms(times["web"]), median_ms(times["onnxruntime"])
    return {
        "web_ms": web_ms,
        "onnxruntime_ms": native_ms,
        "ratio": web_ms / native_ms,
        "web_provider": web.info.providers[0],
        "times_s": times,
    }


def generator_ms(model: Path, image: np.ndarray, threads: int, rounds: int) -> list[float]:
    gen = Generator(model, device="cpu", threads=threads, tile=0)
    gen(image)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        gen(image)
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def chromium_vs_native(
    page: Path, index: int, model: Path, threads: int, rounds: int, profile: Path
) -> dict[str, Any]:
    image = np.asarray(Image.open(page / "photo.png").convert("RGBA"))
    before = generator_ms(model, image, threads, rounds)
    query = f"model={index}&threads={threads}&photo=photo.png&repeat={rounds + 1}"
    report, _ = open_page(page, query, profile)
    if "error" in report:
        raise SystemExit(f"web benchmark: the page failed: {report['error']}")
    after = generator_ms(model, image, threads, rounds)
    page_runs = report["timings"]["runs_ms"][1:]  # the first run is the warm-up
    native = statistics.median(before + after)
    page_ms = statistics.median(page_runs)
    return {
        "page_ms": page_ms,
        "generator_ms": native,
        "ratio": page_ms / native,
        "threads_ran": report["info"]["threads"],
        "cross_origin_isolated": report["info"]["crossOriginIsolated"],
        "verified": report["verify"]["passed"],
        "page_runs_ms": page_runs,
        "generator_runs_ms": before + after,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    models = [ROOT / m if not Path(m).is_absolute() else Path(m) for m in args.models.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    ort = find_ort_web()
    work = Path(tempfile.mkdtemp(prefix="edgegen-web-bench-"))
    try:
        page = work / "page"
        pack = [sys.executable, "-m", "edgegen.cli", "web", *map(str, models), "-o", str(page)]
        subprocess.run(pack, check=True, capture_output=True)
        s = args.size
        noisy_photo(page / "photo.png", box=(0, 0, s, s))
        results = []
        for index, model in enumerate(models):
            for t in threads:
                row: dict[str, Any] = {"model": str(model.relative_to(ROOT)), "threads": t}
                row["node"] = node_vs_native(model, t, s, args.rounds)
                row["chromium"] = chromium_vs_native(
                    page, index, model, t, args.rounds, work / f"profile-{index}-{t}"
                )
                results.append(row)
                print(
                    f"{model.name} {t} thread(s): node {row['node']['web_ms']:.0f} ms vs "
                    f"onnxruntime {row['node']['onnxruntime_ms']:.0f} ms "
                    f"({row['node']['ratio']:.1f}x); page {row['chromium']['page_ms']:.0f} ms vs "
                    f"Generator {row['chromium']['generator_ms']:.0f} ms "
                    f"({row['chromium']['ratio']:.1f}x)",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = {
        "machine": describe(),
        "command": "python benchmarks/web.py " + " ".join(sys.argv[1:]),
        "onnxruntime_web": ort.version,
        "size": args.size,
        "rounds": args.rounds,
        "results": results,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
