"""Quality and speed of the shipped models (models/*/), and their model cards.

For every folder under models/ with exported ONNX files, on the three held-out photos (chelsea,
rocket, coffee; never trained on), degraded as training validates (fixed seeds per photo):

- a denoiser: PSNR/SSIM of fp32 and int8 at sigma 15, 25 and 50, beside the noisy input and,
  at sigma 25, scikit-image's NL-means in both fast variants of its example (:data:`NL_MEANS`;
  sigma by estimate_sigma, which needs PyWavelets: PYTHONPATH to a `pip install --target` of
  it; the known sigma without), timed;
- a super-resolver: PSNR/SSIM of fp32 and int8 beside bicubic upscaling of the same input;
- speed on this CPU (onnxruntime, --threads): the three whole photos, and one 256x256 input,
  median of --runs calls, the precisions alternating so that load drifts hit all alike.

With --write, each model folder gets metrics.json (what `edgegen models` lists) and README.md
(its model card: task, data, the training command, metrics, size, speed), and the results go to
benchmarks/results/shipped_models.json. `make models` runs it after training and exporting.

    .venv/bin/python benchmarks/shipped_models.py --runs runs/models --write
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from _machine import describe

from edgegen.evaluation.degrade import BicubicDownscale, GaussianNoise
from edgegen.evaluation.photos import BUNDLED_HELD_OUT, BUNDLED_TRAIN, bundled_paths, load_all
from edgegen.runtime.files import atomic_write_text
from edgegen.runtime.generator import Generator
from edgegen.runtime.zoo import models_root
from edgegen.train.data import val_samples
from edgegen.train.validate import input_baseline, psnr_ssim

SIGMAS = (15.0, 25.0, 50.0)
SR_GOAL_DB = 1.5  # the bar: a x2 model beats bicubic by at least this much
# Reference numbers measured earlier on this split with the `bm3d` package (not rerun here).
BM3D = {"psnr_sigma25": 32.22, "seconds_3_photos": 43.0}


def held_out() -> list[Any]:
    return load_all(bundled_paths("val"), 3).photos


def run_model(gen: Generator, image: np.ndarray) -> np.ndarray:
    return np.clip(gen(image.astype(np.float32)), 0.0, 1.0)


def score(pairs: list[Any], outputs: list[np.ndarray]) -> dict[str, float]:
    values = [psnr_ssim(p.clean, o) for p, o in zip(pairs, outputs, strict=True)]
    return {
        "psnr": float(np.mean([v[0] for v in values])),
        "ssim": float(np.mean([v[1] for v in values])),
    }


# scikit-image's NL-means example (plot_nonlocal_means): fast mode, patch 5, distance 6, with
# sigma estimated by estimate_sigma; h = 0.6 sigma when sigma is passed, 0.8 sigma when not.
NL_MEANS = {
    "fast, sigma given, h=0.6σ": (0.6, True),
    "fast, no sigma, h=0.8σ": (0.8, False),
}


def nl_means(pairs: list[Any], known_sigma: float) -> dict[str, Any]:
    """Both fast variants of scikit-image's NL-means example, scored and timed. sigma comes from
    estimate_sigma when PyWavelets is installed (edgegen's environment lacks it), else it is the
    noise's known sigma."""
    import importlib.util

    from skimage.restoration import denoise_nl_means, estimate_sigma

    estimated = importlib.util.find_spec("pywt") is not None
    results: dict[str, Any] = {}
    for name, (h, give_sigma) in NL_MEANS.items():
        outputs, start = [], time.perf_counter()
        for p in pairs:
            sigma = (
                float(np.mean(estimate_sigma(p.degraded, channel_axis=-1)))
                if estimated
                else known_sigma
            )
            out = denoise_nl_means(
                p.degraded,
                h=h * sigma,
                sigma=sigma if give_sigma else 0.0,
                fast_mode=True,
                patch_size=5,
                patch_distance=6,
                channel_axis=-1,
            )
            outputs.append(np.clip(out, 0.0, 1.0).astype(np.float32))
        results[name] = {
            **score(pairs, outputs),
            "seconds_3_photos": time.perf_counter() - start,
            "sigma": "estimate_sigma" if estimated else "known sigma",
        }
    return results


def timings(
    gens: dict[str, Generator], inputs: list[np.ndarray], runs: int
) -> dict[str, dict[str, float]]:
    """Median seconds of all ``inputs`` per precision, and of one 256x256 input, alternating."""
    square = inputs[0][:256, :256] if inputs[0].shape[0] >= 256 else inputs[0]
    per: dict[str, dict[str, list[float]]] = {p: {"photos": [], "256": []} for p in gens}
    for gen in gens.values():  # warm-up: allocation and first-call costs are not what we time
        for x in (*inputs, square):
            gen(x)
    for _ in range(runs):
        for precision, gen in gens.items():
            start = time.perf_counter()
            for x in inputs:
                gen(x)
            per[precision]["photos"].append(time.perf_counter() - start)
            start = time.perf_counter()
            gen(square)
            per[precision]["256"].append(time.perf_counter() - start)
    return {
        p: {
            "seconds_3_photos": statistics.median(t["photos"]),
            "ms_256": statistics.median(t["256"]) * 1000.0,
        }
        for p, t in per.items()
    }


def measure_denoiser(gens: dict[str, Generator], runs: int) -> dict[str, Any]:
    photos = held_out()
    result: dict[str, Any] = {"precisions": {p: {} for p in gens}, "sigmas": {}}
    for sigma in SIGMAS:
        pairs = val_samples(photos, GaussianNoise(sigma))
        key = f"sigma{sigma:g}"
        row: dict[str, Any] = {"noisy": score(pairs, [p.degraded for p in pairs])}
        for precision, gen in gens.items():
            row[precision] = score(pairs, [run_model(gen, p.degraded) for p in pairs])
            result["precisions"][precision][f"psnr_{key}"] = row[precision]["psnr"]
        if sigma == 25.0:
            row["nl_means"] = nl_means(pairs, sigma / 255.0)
            row["bm3d_earlier"] = BM3D
            per_photo = {
                p: {
                    pair.photo: psnr_ssim(pair.clean, run_model(g, pair.degraded))[0]
                    for pair in pairs
                }
                for p, g in gens.items()
            }
            row["per_photo_psnr"] = per_photo
            speed = timings(gens, [p.degraded for p in pairs], runs)
        result["sigmas"][key] = row
    for precision, t in speed.items():
        result["precisions"][precision].update(t)
        result["precisions"][precision]["bm3d_time_ratio"] = (
            BM3D["seconds_3_photos"] / t["seconds_3_photos"]
        )
    return result


def measure_sr(gens: dict[str, Generator], scale: int, runs: int) -> dict[str, Any]:
    pairs = val_samples(held_out(), BicubicDownscale(scale), scale)
    result: dict[str, Any] = {"precisions": {p: {} for p in gens}}
    result["bicubic"] = score(pairs, [input_baseline(p, scale) for p in pairs])
    for precision, gen in gens.items():
        s = score(pairs, [run_model(gen, p.degraded) for p in pairs])
        result[precision] = s
        result["precisions"][precision].update(
            {"psnr": s["psnr"], "gain_over_bicubic": s["psnr"] - result["bicubic"]["psnr"]}
        )
    for precision, t in timings(gens, [p.degraded for p in pairs], runs).items():
        result["precisions"][precision].update(t)
    return result


def train_record(run: Path) -> dict[str, Any]:
    """Steps and training seconds from the run's metrics.jsonl (empty when the run is gone)."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        return {}
    last = json.loads(path.read_text(encoding="utf-8").strip().splitlines()[-1])
    return {"steps": last["step"], "train_seconds": last["seconds"]}


LABELS = {
    "denoise": {"psnr_sigma25": "PSNR σ=25 dB", "ms_256": "ms/256²"},
    "sr": {"psnr": "PSNR dB", "gain_over_bicubic": "+dB vs bicubic", "ms_256": "ms/256²"},
}


def card(name: str, folder: Path, m: dict[str, Any], machine: str, threads: int) -> str:
    manifests = {
        p: json.loads((folder / f"model.{p}.manifest.json").read_text(encoding="utf-8"))
        for p in m["precisions"]
    }
    spec = next(iter(manifests.values()))["spec"]
    arch = spec["arch_params"]
    task = spec["task"]
    preset = m["preset"]
    lines = [f"# {name}: {m['description']}", ""]
    lines += [
        f"- **Task**: {task}"
        + (f" x{spec['scale']}" if spec.get("scale", 1) > 1 else "")
        + f"; undoes `{json.dumps(spec['degradation'])}`.",
        f"- **Network**: edgegen's residual generator (`{spec['arch']}`), {arch['channels']} "
        "channels, "
        f"{arch['blocks']} blocks"
        f", {arch['act']}; receptive field {spec['receptive_field']} px. "
        "Input and output: float32 NCHW RGB in [0, 1] (the ONNX contract in the README).",
        f"- **Data**: the {len(BUNDLED_TRAIN)} photos that ship inside scikit-image "
        f"({', '.join(BUNDLED_TRAIN)}); {', '.join(BUNDLED_HELD_OUT)} are held out, never "
        "trained on, and are what every number below is measured on.",
        f"- **Training**: `edgegen train --preset {preset} --out runs/models/{name}`"
        + (
            f" ({m['train']['steps']} steps, {m['train']['train_seconds'] / 60:.0f} min on this "
            "CPU, shared with other work)"
            if m.get("train")
            else ""
        )
        + f"; then `edgegen export runs/models/{name} --out models/{name} "
        f"--precision {','.join(m['precisions'])}`. `make models` does both for every model.",
        "",
        "| precision | file | size |",
        "|---|---|---|",
    ]
    for p, man in manifests.items():
        lines.append(f"| {p} | `{man['file']}` | {man['size_bytes'] / 1e6:.2f} MB |")
    lines += ["", "Quality on the held-out photos (mean PSNR in dB / SSIM):", ""]
    if task == "denoise":
        header = "| σ | noisy input | " + " | ".join(m["precisions"]) + " |"
        lines += [header, "|---|---|" + "---|" * len(m["precisions"])]
        for key, row in m["sigmas"].items():
            cells = [f"{row[p]['psnr']:.2f} / {row[p]['ssim']:.3f}" for p in m["precisions"]]
            noisy = f"{row['noisy']['psnr']:.2f} / {row['noisy']['ssim']:.3f}"
            lines.append(f"| {key[len('sigma') :]} | {noisy} | " + " | ".join(cells) + " |")
        s25 = m["sigmas"]["sigma25"]
        nlm = " and ".join(
            f"{v['psnr']:.2f} dB / {v['ssim']:.3f} ({k}, {v['seconds_3_photos']:.1f} s)"
            for k, v in s25["nl_means"].items()
        )
        how = next(iter(s25["nl_means"].values()))["sigma"]
        lines += [
            "",
            f"At σ = 25, scikit-image's NL-means as in its example (patch 5, distance 6, σ by "
            f"{how}), measured here: {nlm}. BM3D: "
            f"{BM3D['psnr_sigma25']:.2f} dB in {BM3D['seconds_3_photos']:.0f} s (an earlier "
            "measurement on these photos, not reproduced here). Per photo: "
            + "; ".join(
                f"{p} " + ", ".join(f"{k} {v:.2f}" for k, v in s25["per_photo_psnr"][p].items())
                for p in m["precisions"]
            )
            + ".",
        ]
    else:
        lines += ["| bicubic | " + " | ".join(m["precisions"]) + " |"]
        lines += ["|---|" + "---|" * len(m["precisions"])]
        cells = [f"{m[p]['psnr']:.2f} / {m[p]['ssim']:.3f}" for p in m["precisions"]]
        lines.append(
            f"| {m['bicubic']['psnr']:.2f} / {m['bicubic']['ssim']:.3f} | "
            + " | ".join(cells)
            + " |"
        )
        gains = ", ".join(
            f"{p} {m['precisions'][p]['gain_over_bicubic']:+.2f} dB" for p in m["precisions"]
        )
        lines += ["", f"Gain over bicubic: {gains}."]
        best = max(m["precisions"][p]["gain_over_bicubic"] for p in m["precisions"])
        if best < SR_GOAL_DB:
            lines.append(
                f"This falls short of the {SR_GOAL_DB} dB the project asks of a ×2 model: the "
                "recipe was cut to what a shared 2-core CPU trains in about 30 minutes (the "
                "validation PSNR still rose through the last steps); a longer run (`--steps`) "
                "or a GPU is what it needs."
            )
    lines += [
        "",
        f"Speed on this CPU ({machine}; onnxruntime CPU, {threads} threads; median of "
        "alternating runs while other work shared the cores, so read the ratios, not the "
        "absolute times):",
        "",
        "| precision | 256×256 input | the three held-out photos |",
        "|---|---|---|",
    ]
    for p in m["precisions"]:
        t = m["precisions"][p]
        lines.append(f"| {p} | {t['ms_256']:.1f} ms | {t['seconds_3_photos']:.2f} s |")
    if task == "denoise":
        ratios = ", ".join(
            f"{p} {m['precisions'][p]['bm3d_time_ratio']:.0f}×" for p in m["precisions"]
        )
        lines += ["", f"Against BM3D's 43 s for the three photos: {ratios} faster."]
    lines += [
        "",
        "Each file is checked by `edgegen verify models/"
        f"{name}/model.<precision>.onnx` against the golden samples beside it, and its sha256 "
        "against its manifest whenever it is loaded.",
        "",
        "Limits: synthetic degradations only ("
        + (
            "additive white Gaussian noise; real sensor noise is signal-dependent and correlated"
            if task == "denoise"
            else "bicubic downscaling; real low-resolution images are blurred and noisy otherwise"
        )
        + "); trained on 16 photos, so expect less on content unlike them.",
        "",
    ]
    return "\n".join(lines)


DESCRIPTIONS = {
    "denoise": "blind Gaussian denoiser (σ 5–50 in 8-bit steps)",
    "sr": "×{scale} super-resolution (bicubic downscale)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=models_root())
    parser.add_argument("--runs", type=Path, default=Path("runs/models"), help="Training runs.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timing-runs", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="Write metrics.json and README.md.")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/shipped_models.json"))
    parser.add_argument("--presets", default="denoise-blind=denoise-blind,sr2=sr2")
    args = parser.parse_args()
    presets = dict(item.split("=", 1) for item in args.presets.split(","))
    machine = describe()
    results: dict[str, Any] = {"machine": machine, "threads": args.threads, "models": {}}
    for folder in sorted(p for p in args.models.iterdir() if p.is_dir()):
        files = sorted(folder.glob("model.*.onnx"))
        if not files:
            continue
        gens = {
            f.name.split(".")[1]: Generator(f, device="cpu", threads=args.threads, tile=0)
            for f in files
        }
        gens = dict(sorted(gens.items(), key=lambda kv: ("fp32", "fp16", "int8").index(kv[0])))
        spec = next(iter(gens.values())).spec
        if spec.task == "denoise":
            m = measure_denoiser(gens, args.timing_runs)
        else:
            m = measure_sr(gens, spec.scale, args.timing_runs)
        m["task"] = spec.task
        m["description"] = DESCRIPTIONS[spec.task].format(scale=spec.scale)
        m["preset"] = presets.get(folder.name, folder.name)
        m["train"] = train_record(args.runs / folder.name)
        results["models"][folder.name] = m
        print(json.dumps({folder.name: m["precisions"]}, indent=1))
        if args.write:
            info = {
                "description": m["description"],
                "labels": LABELS[spec.task],
                "precisions": m["precisions"],
                "measured_on": machine,
            }
            atomic_write_text(folder / "metrics.json", json.dumps(info, indent=2) + "\n")
            atomic_write_text(
                folder / "README.md", card(folder.name, folder, m, machine, args.threads)
            )
    if args.write:
        atomic_write_text(args.json, json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
