"""Peak memory of a 4000x3000 photo through `Generator`, tiled (the default) and whole, with
onnxruntime's CPU memory arena on (the default) and off (`cpu_mem_arena=False`).

Each case runs in a fresh process and reports its peak RSS (ru_maxrss), the RSS before the
call (model loaded, image in memory) and the time; the image is a real photo (scikit-image's
coffee) tiled up to 4000x3000 so the content is photographic. With `--repeats N` the cases run
N times in turn (A B C D A B C D ...) and the medians are reported.

    .venv/bin/python benchmarks/tiling_memory.py MODEL.onnx [--repeats 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from _machine import describe

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np
import skimage.data
from edgegen.runtime import Generator
from edgegen.runtime.images import read_image

model, tile, arena = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
photo = read_image(Path(skimage.data.__file__).parent / "coffee.png")[..., :3]
image = np.ascontiguousarray(np.tile(photo, (8, 7, 1))[:3000, :4000])
gen = Generator(
    model, device="cpu", threads=2, tile=None if tile < 0 else tile, cpu_mem_arena=arena
)
kb = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
before = kb()
t0 = time.perf_counter()
out = gen(image)
seconds = time.perf_counter() - t0
assert out.shape == image.shape
print(json.dumps({"rss_before_mb": before / 1024, "peak_rss_mb": kb() / 1024, "seconds": seconds}))
"""


# Time only, arena on against off, alternating in one process so that a busy machine slows both
# alike (the separate processes above each meet a different load).
TIME_CHILD = r"""
import json, statistics, sys, time
from pathlib import Path
import numpy as np
import skimage.data
from edgegen.runtime import Generator
from edgegen.runtime.images import read_image

model, pairs = sys.argv[1], int(sys.argv[2])
photo = read_image(Path(skimage.data.__file__).parent / "coffee.png")[..., :3]
image = np.ascontiguousarray(np.tile(photo, (4, 4, 1))[:1500, :2000])
gens = {arena: Generator(model, device="cpu", threads=2, cpu_mem_arena=arena) for arena in (1, 0)}
times = {1: [], 0: []}
for _ in range(pairs):
    for arena, gen in gens.items():
        t0 = time.perf_counter()
        gen(image)
        times[arena].append(time.perf_counter() - t0)
on, off = statistics.median(times[1]), statistics.median(times[0])
print(json.dumps({"arena_on_s": on, "arena_off_s": off, "off_over_on": off / on, "pairs": pairs}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--time-pairs", type=int, default=0, help="arena on/off time, 2000x1500")
    ap.add_argument("--skip-rss", action="store_true", help="only the --time-pairs part")
    args = ap.parse_args()
    cases = {
        "tiled (default: 512 px tiles)": (-1, 1),
        "tiled, cpu_mem_arena=False": (-1, 0),
        "whole image (tile=0)": (0, 1),
        "whole image, cpu_mem_arena=False": (0, 0),
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
    for _ in range(0 if args.skip_rss else args.repeats):
        for name, (tile, arena) in cases.items():
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(args.model), str(tile), str(arena)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            runs[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    results = {
        name: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
        for name, rs in runs.items()
        if rs
    }
    timing = None
    if args.time_pairs:
        proc = subprocess.run(
            [sys.executable, "-c", TIME_CHILD, str(args.model), str(args.time_pairs)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        timing = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{describe()}; 4000x3000 RGB uint8 input (36 MB), model {args.model.name}")
    for name, r in results.items():
        print(f"{name:30} peak RSS {r['peak_rss_mb']:7.0f} MB  (before the call "
              f"{r['rss_before_mb']:5.0f} MB)  {r['seconds']:6.1f} s")  # fmt: skip
    if timing is not None:
        print(f"2000x1500 tiled, alternating in one process ({timing['pairs']} pairs): arena on "
              f"{timing['arena_on_s']:.2f} s, off {timing['arena_off_s']:.2f} s, "
              f"off/on {timing['off_over_on']:.3f}")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        summary = {
            "machine": describe(),
            "model": args.model.name,
            "input": [3000, 4000, 3],
            "repeats": args.repeats,
            "note": "medians over the repeats; the CPU was shared with other jobs",
        }
        if timing is not None:
            summary["arena_time_2000x1500_tiled"] = timing
        args.json.write_text(json.dumps({**summary, "cases": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
