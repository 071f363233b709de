"""Peak memory of a 4000x3000 photo through `Generator`, tiled (the default) and whole.

Each case runs in a fresh process and reports its peak RSS (ru_maxrss), the RSS before the
call (model loaded, image in memory) and the time; the image is a real photo (scikit-image's
coffee) tiled up to 4000x3000 so the content is photographic.

    .venv/bin/python benchmarks/tiling_memory.py MODEL.onnx [--json FILE]
"""

from __future__ import annotations

import argparse
import json
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

model, tile = sys.argv[1], int(sys.argv[2])
photo = read_image(Path(skimage.data.__file__).parent / "coffee.png")[..., :3]
image = np.ascontiguousarray(np.tile(photo, (8, 7, 1))[:3000, :4000])
gen = Generator(model, device="cpu", threads=2, tile=None if tile < 0 else tile)
kb = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
before = kb()
t0 = time.perf_counter()
out = gen(image)
seconds = time.perf_counter() - t0
assert out.shape == image.shape
print(json.dumps({"rss_before_mb": before / 1024, "peak_rss_mb": kb() / 1024, "seconds": seconds}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    cases = {"tiled (default: 512 px tiles)": -1, "whole image (tile=0)": 0}
    results = {}
    for name, tile in cases.items():
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(args.model), str(tile)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{describe()}; 4000x3000 RGB uint8 input (36 MB), model {args.model.name}")
    for name, r in results.items():
        print(f"{name:30} peak RSS {r['peak_rss_mb']:7.0f} MB  (before the call "
              f"{r['rss_before_mb']:5.0f} MB)  {r['seconds']:6.1f} s")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        summary = {"machine": describe(), "model": args.model.name, "input": [3000, 4000, 3]}
        args.json.write_text(json.dumps({**summary, "cases": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
