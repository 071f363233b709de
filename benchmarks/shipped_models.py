"""Quality and speed of the shipped models (models/*/) beside BM3D and bicubic, and their cards.

Measured on the held-out photos that `make data` fetches (data/photos/held-out: packages that
training never reads, and scikit-image's three held-out photos), degraded as every edgegen tool
degrades them (fixed seeds per photo; noise clipped and rounded to 8 bits, as a noisy file holds
it):

- a denoiser, at sigma 15, 25 and 50: PSNR/SSIM of fp32 and int8 and of BM3D (the ``bm3d``
  package, a benchmark-only dependency, given the true sigma) on the same noisy photos; the
  colour shift (each channel's mean error over a photo, in 8-bit steps, and over its dark
  regions, the 16x16 blocks whose clean mean luma is below 0.25), the worst over photos and
  channels, on that noisy photo and, at sigma 25, averaged over SHIFT_DRAWS noise draws (the
  model's bias, without the noise a small dark region's mean keeps); and the speed against
  BM3D, side by side: BM3D and each precision on the same photos, alternating;
- a super-resolver: PSNR/SSIM of fp32 and int8 beside bicubic upscaling of the same input;
- speed on this CPU (onnxruntime, --threads): one 256x256 input, median of --timing-runs.

BM3D's outputs are cached under runs/bm3d-cache (keyed by the noisy photo's sha256 and sigma);
its timing never is: the speed rows are measured in this run.

With --write, each model folder gets metrics.json (what `edgegen models` lists) and README.md
(its model card), and the results go to benchmarks/results/shipped_models.json. `make models`
runs it after training and exporting.

    .venv/bin/python benchmarks/shipped_models.py --runs runs/models --write
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from _machine import describe

from edgegen.evaluation.degrade import BicubicDownscale, GaussianNoise
from edgegen.evaluation.photos import BUNDLED_HELD_OUT, BUNDLED_TRAIN, Photo, find_images, load_all
from edgegen.evaluation.quality import ColourShift, colour_shift, mean_shift, worst_shift
from edgegen.runtime.files import atomic_write_text
from edgegen.runtime.generator import Generator
from edgegen.runtime.zoo import models_root
from edgegen.train.data import val_samples
from edgegen.train.validate import input_baseline, psnr_ssim

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT = ROOT / "data" / "photos" / "held-out"
TRAIN = ROOT / "data" / "photos" / "train"
SIGMAS = (15.0, 25.0, 50.0)
SPEED_PHOTOS = 4  # photos timed side by side against BM3D (BM3D takes ~15 s each)
BM3D_CACHE = ROOT / "runs" / "bm3d-cache"
SHIFT_DRAWS = 4  # noise draws at sigma 25 whose mean error is a model's colour bias
DRAW_SEED = 20261207  # the draws after the first (which is every tool's held-out sample)


def held_out() -> list[Photo]:
    if not HELD_OUT.is_dir():
        raise SystemExit(f"{HELD_OUT} is missing: run `make data` first")
    return load_all(find_images(HELD_OUT), 3, HELD_OUT).photos


def run_model(gen: Generator, image: np.ndarray) -> np.ndarray:
    return np.clip(gen(image.astype(np.float32)), 0.0, 1.0)


def bm3d_denoise(noisy: np.ndarray, sigma: float) -> tuple[np.ndarray, float]:
    """BM3D (CBM3D for colour) given the true sigma; (output, seconds)."""
    import bm3d

    start = time.perf_counter()
    out = bm3d.bm3d_rgb(noisy.astype(np.float64), sigma / 255.0)
    seconds = time.perf_counter() - start
    return np.clip(out, 0.0, 1.0).astype(np.float32), seconds


def bm3d_cached(noisy: np.ndarray, sigma: float) -> np.ndarray:
    key = hashlib.sha256(np.ascontiguousarray(noisy).tobytes()).hexdigest()[:24]
    path = BM3D_CACHE / f"{key}-s{sigma:g}.npy"
    if path.is_file():
        return np.load(path)
    out, _ = bm3d_denoise(noisy, sigma)
    BM3D_CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, out)
    tmp.replace(path)
    return out


def scores(
    pairs: list[Any], outputs: list[np.ndarray]
) -> tuple[dict[str, Any], dict[str, float], list[ColourShift]]:
    """(mean PSNR/SSIM and worst colour shift, per-photo PSNR, per-photo shifts)."""
    values = [psnr_ssim(p.clean, o) for p, o in zip(pairs, outputs, strict=True)]
    shifts = [colour_shift(p.clean, o) for p, o in zip(pairs, outputs, strict=True)]
    worst = worst_shift(shifts)
    summary = {
        "psnr": float(np.mean([v[0] for v in values])),
        "ssim": float(np.mean([v[1] for v in values])),
        "colour_shift_lsb": worst.overall,
        "colour_shift_dark_lsb": worst.dark,
    }
    per_photo = {p.photo: v[0] for p, v in zip(pairs, values, strict=True)}
    return summary, per_photo, shifts


def noise_draws(pairs: list[Any], sigma: float, draws: int) -> list[list[np.ndarray]]:
    """Noisy copies of the photos beyond ``pairs``' own: ``draws - 1`` lists, one per draw."""
    noise = GaussianNoise(sigma)
    return [
        [
            np.asarray(noise(p.clean, np.random.default_rng((DRAW_SEED, i, k))), np.float32)
            for i, p in enumerate(pairs)
        ]
        for k in range(1, draws)
    ]


def colour_bias(
    gen: Generator, pairs: list[Any], first: list[ColourShift], extra: list[list[np.ndarray]]
) -> list[ColourShift]:
    """Each photo's colour shift averaged over the noise draws (``first``: the first draw's)."""
    draws = [first] + [
        [colour_shift(p.clean, run_model(gen, noisy)) for p, noisy in zip(pairs, d, strict=True)]
        for d in extra
    ]
    return [mean_shift(list(per_photo)) for per_photo in zip(*draws, strict=True)]


def speed_against_bm3d(gens: dict[str, Generator], pairs: list[Any], runs: int) -> dict[str, Any]:
    """Seconds for the same photos: BM3D once each, each precision the median of ``runs``,
    alternating photo by photo so that load drifts hit all alike."""
    bm3d_s = 0.0
    model_s = {p: 0.0 for p in gens}
    for pair in pairs:
        for gen in gens.values():
            gen(pair.degraded)  # warm-up: first-call costs are not what we time
        _, seconds = bm3d_denoise(pair.degraded, 25.0)
        bm3d_s += seconds
        for precision, gen in gens.items():
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                gen(pair.degraded)
                times.append(time.perf_counter() - start)
            model_s[precision] += statistics.median(times)
    return {
        "photos": [p.photo for p in pairs],
        "pixels": int(sum(p.degraded.shape[0] * p.degraded.shape[1] for p in pairs)),
        "bm3d_seconds": bm3d_s,
        "seconds": model_s,
        "times_faster": {p: bm3d_s / s for p, s in model_s.items()},
    }


def ms_256(gens: dict[str, Generator], image: np.ndarray, runs: int) -> dict[str, float]:
    square = image[:256, :256]
    per: dict[str, list[float]] = {p: [] for p in gens}
    for gen in gens.values():
        gen(square)
    for _ in range(runs):
        for precision, gen in gens.items():
            start = time.perf_counter()
            gen(square)
            per[precision].append(time.perf_counter() - start)
    return {p: statistics.median(t) * 1000.0 for p, t in per.items()}


def measure_denoiser(gens: dict[str, Generator], runs: int) -> dict[str, Any]:
    photos = held_out()
    result: dict[str, Any] = {"precisions": {p: {} for p in gens}, "sigmas": {}}
    for sigma in SIGMAS:
        pairs = val_samples(photos, GaussianNoise(sigma))
        key = f"sigma{sigma:g}"
        row: dict[str, Any] = {"noisy": scores(pairs, [p.degraded for p in pairs])[0]}
        per_photo: dict[str, dict[str, float]] = {}
        shifts: dict[str, list[dict[str, Any]]] = {}
        biases: dict[str, list[dict[str, Any]]] = {}
        extra = noise_draws(pairs, sigma, SHIFT_DRAWS) if sigma == 25.0 else []
        bm3d_out = [bm3d_cached(p.degraded, sigma) for p in pairs]
        row["bm3d"], per_photo["bm3d"], bm3d_shifts = scores(pairs, bm3d_out)
        shifts["bm3d"] = [s.to_dict() for s in bm3d_shifts]
        for precision, gen in gens.items():
            row[precision], per_photo[precision], model_shifts = scores(
                pairs, [run_model(gen, p.degraded) for p in pairs]
            )
            shifts[precision] = [s.to_dict() for s in model_shifts]
            r = result["precisions"][precision]
            r[f"psnr_{key}"] = row[precision]["psnr"]
            r[f"vs_bm3d_{key}"] = row[precision]["psnr"] - row["bm3d"]["psnr"]
            if sigma == 25.0:
                bias = colour_bias(gen, pairs, model_shifts, extra)
                biases[precision] = [b.to_dict() for b in bias]
                worst = worst_shift(bias)
                row[precision]["colour_bias_lsb"] = worst.overall
                row[precision]["colour_bias_dark_lsb"] = worst.dark
                for name in ("shift", "shift_dark", "bias", "bias_dark"):
                    r[f"colour_{name}_lsb"] = row[precision][f"colour_{name}_lsb"]
        row["per_photo_psnr"] = per_photo
        row["per_photo_shift"] = shifts
        if biases:
            row["per_photo_bias"] = biases
            row["shift_draws"] = SHIFT_DRAWS
        result["sigmas"][key] = row
        print(
            f"sigma {sigma:g}: BM3D {row['bm3d']['psnr']:.2f} dB, "
            + ", ".join(f"{p} {row[p]['psnr']:.2f} dB" for p in gens),
            flush=True,
        )
        if sigma == 25.0:
            speed = speed_against_bm3d(gens, pairs[:SPEED_PHOTOS], runs)
            result["speed_vs_bm3d"] = speed
    for precision, ms in ms_256(gens, photos[0].as_float(), runs).items():
        result["precisions"][precision]["ms_256"] = ms
        result["precisions"][precision]["times_faster_than_bm3d"] = result["speed_vs_bm3d"][
            "times_faster"
        ][precision]
    result["held_out"] = [p.name for p in photos]
    return result


def measure_sr(gens: dict[str, Generator], scale: int, runs: int) -> dict[str, Any]:
    photos = held_out()
    pairs = val_samples(photos, BicubicDownscale(scale), scale)
    result: dict[str, Any] = {"precisions": {p: {} for p in gens}}
    result["bicubic"] = scores(pairs, [input_baseline(p, scale) for p in pairs])[0]
    for precision, gen in gens.items():
        s = scores(pairs, [run_model(gen, p.degraded) for p in pairs])[0]
        result[precision] = s
        result["precisions"][precision].update(
            {"psnr": s["psnr"], "gain_over_bicubic": s["psnr"] - result["bicubic"]["psnr"]}
        )
    for precision, ms in ms_256(gens, pairs[0].degraded, runs).items():
        result["precisions"][precision]["ms_256"] = ms
    result["held_out"] = [p.name for p in photos]
    return result


def train_record(run: Path) -> dict[str, Any]:
    """Steps, training seconds and device from the run (empty when the run is gone)."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        return {}
    last = json.loads(path.read_text(encoding="utf-8").strip().splitlines()[-1])
    record: dict[str, Any] = {"steps": last["step"], "train_seconds": last["seconds"]}
    checkpoint = run / "last.json"
    if checkpoint.is_file():
        config = json.loads(checkpoint.read_text(encoding="utf-8")).get("config", {})
        record["device"] = config.get("device", "auto")
    return record


LABELS = {
    "denoise": {
        "psnr_sigma25": "PSNR σ=25 dB",
        "vs_bm3d_sigma25": "dB vs BM3D",
        "ms_256": "ms/256²",
    },
    "sr": {"psnr": "PSNR dB", "gain_over_bicubic": "+dB vs bicubic", "ms_256": "ms/256²"},
}


def network_line(spec: dict[str, Any]) -> str:
    a = spec["arch_params"]
    if spec["arch"] == "residual_unet":
        widths = [min(512, a["channels"] * 2**i) for i in range(a["levels"])]
        shape = (
            f"edgegen's multi-scale residual U-Net (`residual_unet`): {a['levels']} levels of "
            f"widths {'-'.join(map(str, widths))}, {a['blocks']} residual block(s) per level "
            f"and side, {a['act']}"
        )
    else:
        shape = (
            f"edgegen's flat residual generator (`{spec['arch']}`), {a['channels']} channels, "
            f"{a['blocks']} blocks, {a['act']}"
        )
    return (
        f"- **Network**: {shape}; receptive field {spec['receptive_field']} px"
        + (
            f", input sides padded to multiples of {spec['pad_multiple']}"
            if spec.get("pad_multiple", 1) > 1
            else ""
        )
        + ". Input and output: float32 NCHW RGB in [0, 1] (the ONNX contract in the README)."
    )


def training_line(name: str, stages: list[dict[str, Any]], machine: str) -> str:
    """`- **Training**: ...`: each stage's command, steps and time."""
    parts = []
    for stage in stages or [{"preset": name, "run": name}]:
        init = f" --init runs/models/{stage['init']}" if stage.get("init") else ""
        out = f"runs/models/{stage['run']}"
        command = f"`edgegen train --preset {stage['preset']}{init} --out {out}`"
        if "steps" in stage:
            where = "a GPU" if stage.get("device") == "cuda" else f"this CPU ({machine})"
            note = f", {stage['note']}" if stage.get("note") else ""
            command += (
                f" ({stage['steps']} steps, {stage['train_seconds'] / 60:.0f} min on {where}{note})"
            )
        parts.append(command)
    return "- **Training**: " + "; then ".join(parts)


def data_line(preset: str) -> str:
    """`- **Data**: ...`, from the tracked `data/sources.toml` (the fetched photos are not
    tracked, so a clone writes the same card before `make data`)."""
    import tomllib

    from edgegen.train.config import load_preset

    with (ROOT / "data" / "sources.toml").open("rb") as f:
        sources = tomllib.load(f)["package"]
    train = [p for p in sources if p["split"] == "train"]
    held = [p for p in sources if p["split"] == "held-out"]

    def packages(rows: list[dict[str, Any]]) -> str:
        return ", ".join(f"`{n}`" for n in sorted({r["name"] for r in rows}))

    def count(rows: list[dict[str, Any]]) -> int:
        return sum(len(r["photos"]) for r in rows)

    if load_preset(preset).get("data", "bundled") == "bundled":
        trained = (
            f"the {len(BUNDLED_TRAIN)} photos that ship inside scikit-image (its preset's "
            "`--data bundled`)"
        )
    else:
        trained = (
            f"{count(train) + len(BUNDLED_TRAIN)} real photos from the Debian packages "
            f"{packages(train)} and scikit-image"
        )
    held_out = count(held) + len(BUNDLED_HELD_OUT)
    return (
        f"- **Data**: training on {trained}; {held_out} held-out photos, never trained on, "
        f"from {packages(held)} and scikit-image's three held-out photos. `make data` fetches "
        "both sets (`data/sources.toml` lists every photo, its sha256 and licence); every number "
        "below is measured on the held-out set."
    )


def card(name: str, folder: Path, m: dict[str, Any], machine: str, threads: int) -> str:
    manifests = {
        p: json.loads((folder / f"model.{p}.manifest.json").read_text(encoding="utf-8"))
        for p in m["precisions"]
    }
    spec = next(iter(manifests.values()))["spec"]
    task = spec["task"]
    precisions = list(m["precisions"])
    stages = m.get("train") or []
    if isinstance(stages, dict):  # results written before training had stages
        stages = [{"preset": m["preset"], "run": name, **stages}] if stages else []
    lines = [f"# {name}: {m['description']}", ""]
    lines += [
        f"- **Task**: {task}"
        + (f" x{spec['scale']}" if spec.get("scale", 1) > 1 else "")
        + f"; undoes `{json.dumps(spec['degradation'])}`"
        + (
            " (noise clipped and rounded to 8 bits, as a noisy file holds it)."
            if task == "denoise"
            else "."
        ),
        network_line(spec),
        data_line(m["preset"]),
        training_line(name, stages, machine)
        + f"; then `edgegen export runs/models/{name} --out models/{name} "
        f"{EXPORT_OPTIONS.get(name, '--precision ' + ','.join(precisions))}`. `make models` "
        "does all of it for every model, then runs `benchmarks/shipped_models.py --write`, which "
        "measured every number below.",
        "",
        "| precision | file | size |",
        "|---|---|---|",
    ]
    for p, man in manifests.items():
        lines.append(f"| {p} | `{man['file']}` | {man['size_bytes'] / 1e6:.2f} MB |")
    if task == "denoise":
        lines += _denoise_tables(m, precisions, machine, threads)
    else:
        lines += _sr_tables(m, precisions, machine, threads)
    lines += [
        "",
        f"Each file is checked by `edgegen verify models/{name}/model.<precision>.onnx` against "
        "the golden samples beside it, and its sha256 against its manifest whenever it is "
        "loaded.",
        "",
        "Limits: synthetic degradations only ("
        + (
            "additive white Gaussian noise; real sensor noise is signal-dependent and correlated"
            if task == "denoise"
            else "bicubic downscaling; real low-resolution images are blurred and noisy otherwise"
        )
        + ")."
        + (
            " Mean matching reads one noise level for the whole image, as the network was "
            "trained on: where real noise is weaker in the shadows, it undoes more lift there "
            "than the noise gave."
            if m.get("match_means")
            else ""
        ),
        "",
    ]
    return "\n".join(lines)


def over(shifts: list[dict[str, Any]], key: str, limit: float = 0.5) -> int:
    """Photos (``ColourShift.to_dict()`` rows) with a channel's mean error beyond ``limit``."""
    return sum(1 for s in shifts if s[key] and max(abs(v) for v in s[key]) > limit)


def _denoise_tables(
    m: dict[str, Any], precisions: list[str], machine: str, threads: int
) -> list[str]:
    lines = [
        "",
        f"Quality on the {len(m['held_out'])} held-out photos (mean PSNR in dB / SSIM), BM3D "
        "given the true σ, on the same noisy photos"
        + (
            ", of what `edgegen run` writes: the network, then mean matching (the output's local "
            "colour means made the noisy input's, the lift clipping gives dark noisy pixels undone "
            "in closed form; `--no-match-means` turns it off):"
            if m.get("match_means")
            else ":"
        ),
        "",
        "| σ | noisy input | BM3D | "
        + " | ".join(precisions)
        + " | "
        + " | ".join(f"{p} vs BM3D" for p in precisions)
        + " |",
        "|---|---|---|" + "---|" * (2 * len(precisions)),
    ]
    for key, row in m["sigmas"].items():
        cells = [f"{row[p]['psnr']:.2f} / {row[p]['ssim']:.3f}" for p in ("noisy", "bm3d")]
        cells += [f"{row[p]['psnr']:.2f} / {row[p]['ssim']:.3f}" for p in precisions]
        cells += [f"{row[p]['psnr'] - row['bm3d']['psnr']:+.2f} dB" for p in precisions]
        lines.append(f"| {key[len('sigma') :]} | " + " | ".join(cells) + " |")
    s25 = m["sigmas"]["sigma25"]
    lines += [
        "",
        "Colour shift at σ = 25: the largest mean error of one channel over one photo, in 8-bit "
        "steps (LSB), over every held-out photo, and over their dark regions (the 16x16 blocks "
        "whose clean mean luma is below 0.25):",
        "",
        "| | BM3D | " + " | ".join(precisions) + " |",
        "|---|---|" + "---|" * len(precisions),
        "| whole photos | "
        + " | ".join(f"{s25[p]['colour_shift_lsb']:.2f}" for p in ("bm3d", *precisions))
        + " |",
        "| dark regions | "
        + " | ".join(f"{s25[p]['colour_shift_dark_lsb']:.2f}" for p in ("bm3d", *precisions))
        + " |",
    ]
    if "shift_draws" in s25:
        draws = s25["shift_draws"]
        lines += [
            f"| whole photos, mean of {draws} noise draws | – | "
            + " | ".join(f"{s25[p]['colour_bias_lsb']:.2f}" for p in precisions)
            + " |",
            f"| dark regions, mean of {draws} noise draws | – | "
            + " | ".join(f"{s25[p]['colour_bias_dark_lsb']:.2f}" for p in precisions)
            + " |",
            "",
            f"The mean over {draws} noise draws is the model's bias: one draw's mean error over "
            "a dark region of a few thousand pixels also holds tenths of an LSB of noise. BM3D "
            "was run on the first draw only. Photos whose bias is over 0.5 LSB, of "
            f"{len(m['held_out'])}: "
            + "; ".join(
                f"{p} {over(s25['per_photo_bias'][p], 'mean_lsb')} over the whole photo, "
                f"{over(s25['per_photo_bias'][p], 'dark_mean_lsb')} in dark regions"
                for p in precisions
            )
            + ".",
        ]
    lines += [
        "",
        "Per photo at σ = 25 (PSNR dB):",
        "",
        "| photo | BM3D | " + " | ".join(precisions) + " |",
        "|---|---|" + "---|" * len(precisions),
    ]
    per = s25["per_photo_psnr"]
    for photo in per["bm3d"]:
        lines.append(
            f"| {photo} | "
            + " | ".join(f"{per[p][photo]:.2f}" for p in ("bm3d", *precisions))
            + " |"
        )
    speed = m["speed_vs_bm3d"]
    lines += [
        "",
        f"Speed on this CPU ({machine}; onnxruntime CPU, {threads} threads), side by side in "
        f"one run: BM3D and each precision on the same {len(speed['photos'])} held-out photos "
        f"({speed['pixels'] / 1e6:.2f} MP in all), alternating photo by photo"
        + (f" ({m['speed_note']}: read the ratios)" if m.get("speed_note") else "")
        + ":",
        "",
        "| | the photos | 256×256 input | times faster than BM3D |",
        "|---|---|---|---|",
        f"| BM3D | {speed['bm3d_seconds']:.1f} s | | 1× |",
    ]
    for p in precisions:
        lines.append(
            f"| {p} | {speed['seconds'][p]:.2f} s | {m['precisions'][p]['ms_256']:.1f} ms | "
            f"{speed['times_faster'][p]:.0f}× |"
        )
    return lines


def _sr_tables(m: dict[str, Any], precisions: list[str], machine: str, threads: int) -> list[str]:
    lines = [
        "",
        f"Quality on the {len(m['held_out'])} held-out photos (mean PSNR in dB / SSIM):",
        "",
        "| bicubic | " + " | ".join(precisions) + " |",
        "|---|" + "---|" * len(precisions),
        f"| {m['bicubic']['psnr']:.2f} / {m['bicubic']['ssim']:.3f} | "
        + " | ".join(f"{m[p]['psnr']:.2f} / {m[p]['ssim']:.3f}" for p in precisions)
        + " |",
        "",
        "Gain over bicubic: "
        + ", ".join(f"{p} {m['precisions'][p]['gain_over_bicubic']:+.2f} dB" for p in precisions)
        + ".",
        "",
        f"Speed on this CPU ({machine}; onnxruntime CPU, {threads} threads), a 256×256 input "
        "(128×128 in): "
        + ", ".join(f"{p} {m['precisions'][p]['ms_256']:.1f} ms" for p in precisions)
        + ".",
    ]
    return lines


# How each shipped model is exported (`make models` runs the same): the calibration photos are
# the training photos; the denoiser's int8 file is quantization-aware fine-tuned.
EXPORT_OPTIONS = {
    "denoise-blind": "--precision fp32,int8 --qat 1200 --calib data/photos/train --calib-count 64",
    # Plain int8: with the skip in float it is 0.04 dB from fp32 on the held-out photos, and 200
    # QAT steps left it 0.12 dB away (the fine-tune moves weights trained for 7602 steps).
    "sr2": "--precision fp32,int8 --calib data/photos/train --calib-count 64",
}
# How each model is trained (`make models` runs the same): stages in order, each a preset, the
# run folder under runs/models it writes and the run it starts from (--init). The denoiser learns
# with every augmentation under L1, then is fine-tuned under MSE without `gamma`, whose
# saturated highlights are a prior the held-out photos do not share
# (benchmarks/augment_prior.py), then under the PSNR loss, which weighs every patch alike in dB,
# then with `bright` added, near-white scenes where clipped noise is skewed downwards
# (benchmarks/denoise_stages.py measures each stage).
STAGES: dict[str, list[dict[str, str]]] = {
    "denoise-blind": [
        {"preset": "denoise-blind", "run": "denoise-blind-l1"},
        {"preset": "denoise-blind-ft", "run": "denoise-blind-mse", "init": "denoise-blind-l1"},
        {"preset": "denoise-blind-psnr", "run": "denoise-blind-psnr", "init": "denoise-blind-mse"},
        {"preset": "denoise-blind-bright", "run": "denoise-blind", "init": "denoise-blind-psnr"},
    ],
}
# What a training run shared its CPU with, where it did (the card says so beside its time).
TRAIN_NOTES = {
    "denoise-blind-l1": "one thread, beside a second training run on the other core",
    "denoise-blind-mse": "one thread, beside a second training run on the other core",
    "denoise-blind-psnr": "one thread, the other core measuring exports",
    "denoise-blind": "two threads, with short evaluations of its checkpoints beside it",
    "sr2": "one thread, beside a second training run on the other core",
}

DESCRIPTIONS = {
    "denoise": "blind Gaussian denoiser (σ {sigma} in 8-bit steps)",
    "sr": "×{scale} super-resolution (bicubic downscale)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=models_root())
    parser.add_argument("--runs", type=Path, default=Path("runs/models"), help="Training runs.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timing-runs", type=int, default=5)
    parser.add_argument("--only", help="Measure only these model folders (comma-separated).")
    parser.add_argument("--write", action="store_true", help="Write metrics.json and README.md.")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/shipped_models.json"))
    parser.add_argument("--presets", default="denoise-blind=denoise-blind,sr2=sr2")
    parser.add_argument(
        "--cards-only",
        action="store_true",
        help="Rewrite the cards from --json, measuring nothing.",
    )
    parser.add_argument("--speed-note", help="What shared the cores while timing (for the card).")
    args = parser.parse_args()
    if args.cards_only:
        saved = json.loads(args.json.read_text(encoding="utf-8"))
        for name, m in saved["models"].items():
            folder = args.models / name
            atomic_write_text(
                folder / "README.md", card(name, folder, m, saved["machine"], saved["threads"])
            )
            print(f"wrote {folder / 'README.md'}")
        return
    presets = dict(item.split("=", 1) for item in args.presets.split(","))
    machine = describe()
    results: dict[str, Any] = {"machine": machine, "threads": args.threads, "models": {}}
    if args.json.is_file() and args.only:
        results["models"] = json.loads(args.json.read_text(encoding="utf-8"))["models"]
    only = set(args.only.split(",")) if args.only else None
    for folder in sorted(p for p in args.models.iterdir() if p.is_dir()):
        files = sorted(folder.glob("model.*.onnx"))
        if not files or (only is not None and folder.name not in only):
            continue
        gens = {
            f.name.split(".")[1]: Generator(f, device="cpu", threads=args.threads, tile=0)
            for f in files
        }
        gens = dict(sorted(gens.items(), key=lambda kv: ("fp32", "fp16", "int8").index(kv[0])))
        spec = next(iter(gens.values())).spec
        if spec.task == "denoise":
            m = measure_denoiser(gens, args.timing_runs)
            sigma = spec.degradation.get("sigma")
            text = f"{sigma[0]:g}–{sigma[1]:g}" if isinstance(sigma, list) else f"{sigma:g}"
        else:
            m = measure_sr(gens, spec.scale, args.timing_runs)
            text = ""
        m["task"] = spec.task
        m["match_means"] = all(g.match_means for g in gens.values())
        m["description"] = DESCRIPTIONS[spec.task].format(scale=spec.scale, sigma=text)
        m["preset"] = presets.get(folder.name, folder.name)
        m["train"] = [
            {
                **stage,
                **train_record(args.runs / stage["run"]),
                **({"note": TRAIN_NOTES[stage["run"]]} if stage["run"] in TRAIN_NOTES else {}),
            }
            for stage in STAGES.get(folder.name, [{"preset": m["preset"], "run": folder.name}])
        ]
        if args.speed_note:
            m["speed_note"] = args.speed_note
        results["models"][folder.name] = m
        print(json.dumps({folder.name: m["precisions"]}, indent=1), flush=True)
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
