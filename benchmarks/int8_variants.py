"""int8 variants that might close the gap to the 2.7x goal, timed side by side with fp32.

The `small` denoiser (initial weights: speed does not depend on them) is exported to fp32 and
quantized several ways with edgegen's quantize_int8; every session runs on onnxruntime's CPU
provider, 2 threads, in alternating blocks of 4 runs so machine drift hits all alike. Variants:
the default (U8S8, per-channel, MinMax, the head's input and the tail's output padded with zero
channels so MLAS's symmetric int8 kernel takes them: edgegen.export.int8_layout), the same
without that padding, the head and tail convs kept in fp32 instead (they have 3 input or 3
output channels, where the generic int8 path is least efficient: unpadded, the profile put
them at 7% and 9% of the int8 time), per-tensor weights, symmetric activations, and idle-thread
spinning on. Prints median ms and the speed-up against fp32; writes JSON.

    .venv/bin/python benchmarks/int8_variants.py [--rounds 12]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from _machine import describe
from int8_speed import export_fp32, load_model

from edgegen.evaluation.timing import time_alternating
from edgegen.export.calib import calibration_inputs
from edgegen.export.int8 import quantize_int8


def session(path: Path, threads: int, spin: bool) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    # Off by default: alternating sessions on 2 cores, spinning workers steal the next one's cores.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=12, help="alternating rounds of 4 timed runs")
    ap.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results/int8_variants.json"
    )
    args = ap.parse_args()

    model, spec = load_model(None)
    calib = calibration_inputs(spec, "bundled", count=32, size=64, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_fp32(model, spec, fp32)
        convs = [n.name for n in onnx.load(str(fp32)).graph.node if n.op_type == "Conv"]
        variants: dict[str, dict[str, Any]] = {
            "int8 (default: channel pad)": {},
            "no channel pad": {"channel_pad": False},
            "head+tail fp32, no pad": {
                "nodes_to_exclude": [convs[0], convs[-1]],
                "channel_pad": False,
            },
            "per-tensor weights": {"per_channel": False},
            "symmetric activations": {"extra_options": {"ActivationSymmetric": True}},
        }
        sessions = {"fp32": session(fp32, args.threads, False)}
        for name, kwargs in variants.items():
            path = Path(tmp) / f"v{len(sessions)}.onnx"
            quantize_int8(fp32, path, calib, progress=False, **kwargs)
            sessions[name] = session(path, args.threads, False)
        sessions["int8, spinning on"] = session(Path(tmp) / "v1.onnx", args.threads, True)
        sessions["fp32, spinning on"] = session(fp32, args.threads, True)

        x = np.random.default_rng(0).random((1, spec.in_channels, 256, 256), dtype=np.float32)
        # One untimed call after each switch, then blocks of 4 (edgegen bench's timing).
        calls = {name: partial(s.run, None, {"input": x}) for name, s in sessions.items()}
        seconds = time_alternating(calls, args.rounds, block=4)
        times = {name: [t * 1000.0 for t in values] for name, values in seconds.items()}

    base = statistics.median(times["fp32"])
    rows = {}
    print(f"{describe()}, onnxruntime {ort.__version__} CPU, {args.threads} threads, 256x256")
    for name, values in times.items():
        median = statistics.median(values)
        rows[name] = {"median_ms": round(median, 2), "speedup_vs_fp32": round(base / median, 3)}
        print(f"{name:24} {median:8.2f} ms {base / median:6.2f}x")
    record = {
        "machine": describe(),
        "onnxruntime": ort.__version__,
        "threads": args.threads,
        "input": [1, spec.in_channels, 256, 256],
        "rounds": args.rounds,
        "variants": rows,
    }
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
