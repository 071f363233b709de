"""Load: N threads (default 16) calling one Generator for a fixed time (default 60 s).

Every output is compared with the output of a sequential call on the same image made before the
threads start; the goal is zero errors and zero mismatches. Images are crops of real photos
(scikit-image's astronaut and coffee) of several sizes, uint8 RGB, gray and float, and some
threads call ``run_batch``. Reports calls, errors, mismatches and calls per second (the CPU is
shared by the threads, so the rate says nothing about single-call latency).

    .venv/bin/python benchmarks/load_threads.py MODEL.onnx [--threads 16] [--seconds 60]
        [--json benchmarks/results/load_threads.json]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import numpy as np
from _machine import describe
from skimage import data as skdata

from edgegen.runtime import Generator


def workload() -> list[np.ndarray]:
    astronaut, coffee = skdata.astronaut(), skdata.coffee()
    images = [
        astronaut[i * 40 : i * 40 + 48 + 7 * i, i * 50 : i * 50 + 64 - 3 * i] for i in range(6)
    ]
    images += [coffee[:96, :128], coffee[100:164, 200:264, 0]]  # RGB, gray
    images.append((astronaut[:40, :56] / 255.0).astype(np.float32))
    return [np.ascontiguousarray(im) for im in images]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--ort-threads", type=int, default=None, help="onnxruntime intra-op threads")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    gen = Generator(args.model, device="cpu", threads=args.ort_threads)
    images = workload()
    expected = [gen(image) for image in images]
    batch = [images[0]] * 4
    batch_expected = gen.run_batch(batch)

    calls = [0] * args.threads
    errors: list[str] = []
    mismatches: list[str] = []
    stop = time.monotonic() + args.seconds

    def worker(k: int) -> None:
        i = k
        while time.monotonic() < stop:
            try:
                if i % 7 == 0:
                    outs = gen.run_batch(batch)
                    same = all(
                        np.array_equal(a, b) for a, b in zip(outs, batch_expected, strict=True)
                    )
                    if not same:
                        mismatches.append(f"thread {k}: run_batch")
                else:
                    j = i % len(images)
                    if not np.array_equal(gen(images[j]), expected[j]):
                        mismatches.append(f"thread {k}: image {j}")
            except Exception as exc:
                errors.append(f"thread {k}: {type(exc).__name__}: {exc}")
            calls[k] += 1
            i += 1

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started

    result = {
        "benchmark": "load_threads",
        "machine": describe(),
        "model": str(args.model),
        "threads": args.threads,
        "ort_threads": args.ort_threads,
        "seconds": round(elapsed, 1),
        "calls": sum(calls),
        "calls_per_thread_min": min(calls),
        "calls_per_thread_max": max(calls),
        "calls_per_second": round(sum(calls) / elapsed, 1),
        "errors": len(errors),
        "mismatches": len(mismatches),
        "first_problems": (errors + mismatches)[:10],
        "images": [[*im.shape, str(im.dtype)] for im in images],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if errors or mismatches:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
