"""Soak: one `edgegen run` over N generated images (default 2,000), peak memory after 100 and
after N images.

The images are crops of real photos (scikit-image's astronaut, coffee, chelsea), SIZE x SIZE,
written to a temporary folder. `edgegen run MODEL FOLDER -o OUT --no-progress` runs as a child
process; it prints one line per finished image, and at the 100th and the last line this script
reads the child's /proc/PID/status: VmHWM (peak resident set so far) and VmRSS. Goal: the peak
after N images is within 10% of the peak after 100 (no growth per image).

    .venv/bin/python benchmarks/run_soak.py MODEL.onnx [--images 2000] [--size 64]
        [--json benchmarks/results/run_soak.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _machine import describe
from PIL import Image
from skimage import data as skdata


def make_images(folder: Path, count: int, size: int) -> None:
    photos = [skdata.astronaut(), skdata.coffee(), skdata.chelsea()]
    rng = np.random.default_rng(0)
    for i in range(count):
        photo = photos[i % len(photos)]
        y = int(rng.integers(0, photo.shape[0] - size))
        x = int(rng.integers(0, photo.shape[1] - size))
        Image.fromarray(photo[y : y + size, x : x + size]).save(folder / f"img{i:05d}.png")


def memory(pid: int) -> dict[str, int]:
    """VmHWM and VmRSS of ``pid`` in KiB."""
    values = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                values[key] = int(rest.split()[0])
    return values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--early", type=int, default=100, help="first sample after this many images")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="edgegen-soak-") as tmp:
        src, out = Path(tmp) / "in", Path(tmp) / "out"
        src.mkdir()
        make_images(src, args.images, args.size)
        cmd = [sys.executable, "-m", "edgegen.cli", "run", str(args.model), str(src),
               "-o", str(out), "--no-progress"]  # fmt: skip
        env = dict(os.environ, PYTHONUNBUFFERED="1")  # one line as each image is written
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout is not None
        samples: dict[int, dict[str, int]] = {}
        done = 0
        for line in proc.stdout:
            if " -> " not in line:
                continue
            done += 1
            if done in (args.early, args.images) or done % 250 == 0:
                with contextlib.suppress(OSError):  # the child may exit after its last line
                    samples[done] = memory(proc.pid)
        rc = proc.wait()
        elapsed = time.monotonic() - started
        written = len(list(out.glob("*.png")))

    early, last = samples[args.early]["VmHWM"], samples[max(samples)]["VmHWM"]
    result = {
        "benchmark": "run_soak",
        "machine": describe(),
        "model": str(args.model),
        "images": args.images,
        "size": f"{args.size}x{args.size}",
        "exit_code": rc,
        "written": written,
        "seconds": round(elapsed, 1),
        "peak_rss_mib_after_early": round(early / 1024, 1),
        "early": args.early,
        "peak_rss_mib_after_last": round(last / 1024, 1),
        "last_sampled": max(samples),
        "ratio": round(last / early, 4),
        "within_10_percent": last <= 1.10 * early,
        "samples_kib": {str(k): v for k, v in sorted(samples.items())},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if rc != 0 or written != args.images or not result["within_10_percent"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
