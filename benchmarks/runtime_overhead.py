"""Runtime overhead: `Generator(image)` against a bare `InferenceSession.run`, side by side.

Both run the same exported model on the same 256x256 photo crop, with the same threads, taking
turns in blocks of ten calls so machine drift hits both alike. The Generator's extra work is
what an app would otherwise write itself: uint8 HWC -> float NCHW, padding, clipping, uint8.
Goal: Generator costs <= 5% more.

    .venv/bin/python benchmarks/runtime_overhead.py MODEL.onnx [--size 256] [--runs 100]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from _machine import describe

from edgegen.runtime import Generator
from edgegen.runtime.images import read_image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--photo", type=Path, help="default: scikit-image's coffee.png")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    if args.photo is None:
        import skimage.data

        args.photo = Path(skimage.data.__file__).parent / "coffee.png"
    image = np.ascontiguousarray(read_image(args.photo)[: args.size, : args.size, :3])
    nchw = np.ascontiguousarray(image.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.log_severity_level = 3
    bare = ort.InferenceSession(str(args.model), options, providers=["CPUExecutionProvider"])
    gen = Generator(args.model, device="cpu", threads=args.threads, tile=0)

    def bare_call() -> None:
        bare.run(["output"], {"input": nchw})

    def gen_call() -> None:
        gen(image)

    calls = {"bare InferenceSession.run": bare_call, "Generator(image)": gen_call}
    times: dict[str, list[float]] = {name: [] for name in calls}
    for fn in calls.values():  # warm-up
        for _ in range(5):
            fn()
    # Blocks of 10 calls, alternating: per-call alternation makes each session's idle spinning
    # threads steal the cores from the other one and measures that instead.
    for _ in range(max(1, args.runs // 10)):
        for name, fn in calls.items():
            for _ in range(10):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    medians = {name: statistics.median(t) * 1000 for name, t in times.items()}
    ratio = medians["Generator(image)"] / medians["bare InferenceSession.run"]
    print(
        f"{describe()}, onnxruntime {ort.__version__} CPU, {args.threads} threads, "
        f"{args.size}x{args.size}, median of {args.runs} calls in alternating blocks of 10"
    )
    for name, ms in medians.items():
        print(f"{name:28} {ms:8.2f} ms")
    print(f"overhead: {100 * (ratio - 1):+.1f}%  (goal <= +5%)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = {"machine": describe(), "onnxruntime": ort.__version__, "model": args.model.name,
                  "size": args.size, "threads": args.threads, "runs": args.runs,
                  "median_ms": medians, "overhead_pct": round(100 * (ratio - 1), 2)}  # fmt: skip
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
