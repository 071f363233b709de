"""GPU: PyTorch against edgegen's runtime on one CUDA card, in one run.

Prints a table and writes JSON (benchmarks/results/gpu-<card>.json, and $OUT/gpu-<card>.json
when $OUT is set). For the `small` and `medium` architectures at 1x3x512x512 and 8x3x256x256:

- PyTorch: fp32, tf32, fp16 channels_last, each also replayed from a CUDA graph
  (cudnn.benchmark on, weights and input already on the GPU);
- edgegen's runtime (`Generator` on CUDA, device-resident IO binding through `Generator.bound`):
  fp32 (its default: exact, NCHW; also with prefer_nhwc, and with TF32), fp16 (float32 I/O, as
  export writes it) and fp16 with float16 I/O, each with its defaults (NHWC, cuDNN bias fusion)
  and with onnxruntime's (no fusion), with and without a CUDA graph, and one through
  `Generator.infer` (host copies included);
- per variant: median and p95 ms (alternating blocks of calls), the ratio to torch's best, and
  PSNR of its output against torch fp32 on a noisy real photo;
- for medium at 1x3x512x512, the CUDA kernels of torch and onnxruntime (CUPTI, through
  torch.profiler: onnxruntime's kernels run in the same process) into $OUT/profile-medium-512.txt;
- the models' golden samples verified on CUDA (`Generator.verify`, with the defaults and with
  the faster, less exact options), and short AMP training runs, plain and with torch.compile
  (patches/s).

A variant that fails is recorded with its one-line reason and the others still run; the JSON is
rewritten after each step, medium first, so a run cut short still brings back what it measured.

The goal is printed as PASS/FAIL: the runtime's best fp16 <= 1.05x torch's best
on medium at 1x3x512x512, and every runtime fp16 output >= 60 dB PSNR against torch fp32.

Three modes:

    .venv/bin/python benchmarks/gpu.py --prepare        # here: checkpoints + ONNX into .gpu/
    python3 benchmarks/gpu.py                           # on the GPU machine, from the repo root
    .venv/bin/python benchmarks/gpu.py --smoke --models DIR --json FILE   # CPU, tiny (tests)

The GPU machine has python3 3.12 with torch (CUDA), numpy, onnx, click, pillow, safetensors,
scikit-image and tqdm, but not edgegen, onnxslim nor onnxconverter-common: so the models are
exported here (`--prepare`, about 22 MB) and this script imports edgegen from the checkout
through a temporary symlink tree, as `make typecheck` does.

DEVICE-CALL PLAN (one session with a GPU; 15 minutes of device time in all; run these in order,
back to back so the machine stays warm and keeps /tmp/ortgpu):

  here, once:   ../shared/gpu/fetch_ort_gpu.sh        # .ortgpu/part0..part4, SHA256, installer
                .venv/bin/python benchmarks/gpu.py --prepare   # .gpu/ (models, pytest for tests)
  device call 1..4 (one wheel piece each; a call carries at most 64 MiB):
      run(carry=[".ortgpu/part0"], timeout_s=120,
          command="mkdir -p /tmp/ortgpu && cp .ortgpu/part0 /tmp/ortgpu/ && ls -l /tmp/ortgpu")
      ... the same with part1, part2, part3
  device call 5 (the last piece, the installer, the models; the GPU tests, then the measurements):
      run(carry=[".ortgpu/part4", ".ortgpu/SHA256", ".ortgpu/install_ort_gpu.sh", ".gpu"],
          timeout_s=560, command=
          "cp .ortgpu/part4 .ortgpu/SHA256 /tmp/ortgpu/ && bash .ortgpu/install_ort_gpu.sh "
          "&& export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 && "
          "(timeout 120 python3 benchmarks/gpu.py --tests 2>&1 | tee $OUT/tests.log); "
          "timeout 420 python3 benchmarks/gpu.py > $OUT/bench.log 2>&1; tail -90 $OUT/bench.log")
  then give_back, and here: copy files_at/gpu-<card>.json (and the profile) to
  benchmarks/results/, and put its table in docs/guide/gpu.md.
The wheel is split into pieces of 58 MB so that a piece and the working tree (about 7 MB) fit in
one call. If a piece's call fails, rerun that call alone; /tmp/ortgpu keeps the pieces already
copied as long as the machine stays warm (30 s idle; give_back loses them). Measured on an H100
(2026-11-26): a machine's start about 30 s, each piece's call a few seconds, call 5 about 270 s
with the default --rounds 8 and 145 s with `--rounds 4 --no-compile` (tests 6 s, the install
about 20 s): three full passes fitted in the 15 minutes. Call give_back when done.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = ROOT / ".gpu"
PRESETS = ("small", "medium")
SHAPES = ((1, 512, 512), (8, 256, 256))
SMOKE_SHAPES = ((1, 48, 64), (2, 32, 32))
MAX_RATIO = 1.05  # runtime's best fp16 / torch's best, medium at 1x3x512x512
MIN_FP16_PSNR = 60.0  # dB against torch fp32
SIGMA = 25.0  # the noise on the benchmark photo, 8-bit steps
KEEP_ALIVE: list[Any] = []  # what the timed calls use: Generators, graphs' static inputs
PYTEST_PACKAGES = ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "py.py")


def ensure_edgegen_importable() -> None:
    """Import edgegen from this checkout when it is not installed (the GPU machine): a symlink
    tree <tmp>/edgegen/<package> -> the repo's folder, for each package of pyproject.toml's
    package-dir. edgegen is a namespace package (there is no edgegen/__init__.py), so the links
    are all it needs."""
    try:
        import edgegen.runtime
    except ModuleNotFoundError:
        import tomllib

        tree = Path(tempfile.mkdtemp(prefix="edgegen-tree-"))
        (tree / "edgegen").mkdir()
        setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
        for package, folder in setup["package-dir"].items():
            link = tree / package.replace(".", "/")
            link.symlink_to(ROOT / folder, target_is_directory=True)
        sys.path.insert(0, str(tree))
        print(f"edgegen imported from {ROOT} through {tree}", file=sys.stderr)
        import edgegen.runtime  # noqa: F401


# -- prepare (here, with edgegen[train]) -------------------------------------------------------


def prepare(out: Path, smoke: bool, small_run: Path | None) -> None:
    """Checkpoints and ONNX (fp32, fp16, fp16 with float16 I/O) for each architecture, with
    golden samples; plus pytest's pure-Python packages for the GPU tests (the GPU machine has
    no pytest)."""
    import onnx
    import torch

    from edgegen.export.fp16 import convert_fp16
    from edgegen.export.transaction import ExportConfig, export_checkpoint
    from edgegen.train.checkpoint import save_checkpoint
    from edgegen.train.config import TrainConfig
    from edgegen.train.trainer import build_model, make_spec

    out.mkdir(parents=True, exist_ok=True)
    for arch in ("tiny",) if smoke else PRESETS:
        folder = out / arch
        if folder.exists():
            shutil.rmtree(folder)
        run = folder / "run"
        if arch == "small" and small_run is not None and (small_run / "best.json").is_file():
            source: Path = small_run  # the trained sigma=25 denoiser
        else:
            # Untrained (seed 0): the speed is the same, and the near-identity network still
            # shows fp16's rounding against torch fp32.
            cfg = TrainConfig(arch=arch, out=str(run))
            torch.manual_seed(0)
            model = build_model(cfg)
            spec = make_spec(cfg, model)
            record = {"step": 0, "config": cfg.to_dict(), "spec": spec.to_dict(), "metrics": {}}
            save_checkpoint(run, "best", record, model.state_dict())
            source = run
        config = ExportConfig(
            out=str(folder), precision=("fp32", "fp16"), verify=False, progress=False
        )
        export_checkpoint(source, config)
        if source is not run:
            run.mkdir()
            for name in ("best.safetensors", "best.json"):
                shutil.copy2(source / name, run / name)
        half = convert_fp16(onnx.load(str(folder / "model.fp32.onnx")), keep_io_types=False)
        onnx.save(half, str(folder / "model.fp16io.onnx"))
        shutil.copy2(folder / "model.fp16.golden.npz", folder / "model.fp16io.golden.npz")
        print(f"prepared {folder} from {source}")
    if not smoke:
        import pytest

        site = out / "site"
        shutil.rmtree(site, ignore_errors=True)
        site.mkdir()
        packages = Path(pytest.__file__).resolve().parents[1]
        for name in PYTEST_PACKAGES:
            src = packages / name
            if src.is_dir():
                shutil.copytree(src, site / name, ignore=shutil.ignore_patterns("__pycache__"))
            elif src.is_file():
                shutil.copy2(src, site / name)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{out}: {size / 1e6:.1f} MB")


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class Row:
    arch: str
    shape: str
    variant: str
    median_ms: float | None
    p95_ms: float | None
    vs_torch_best: float | None
    psnr_vs_torch_fp32: float | None
    skipped: str | None = None


def card_name(cuda: bool) -> str:
    if not cuda:
        return "cpu-smoke"
    import torch

    return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(0).lower()).strip("-")


def noisy_photos(batch: int, h: int, w: int) -> np.ndarray:
    """Real photos (scikit-image's), cropped, with Gaussian noise: NCHW float32 in [0, 1]."""
    import skimage.data

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    rng = np.random.default_rng(0)
    crops = []
    for k in range(batch):
        p = photos[k % len(photos)]
        top = (p.shape[0] - h) // 2 if p.shape[0] >= h else 0
        left = (p.shape[1] - w) // 2 if p.shape[1] >= w else 0
        crop = np.resize(p[top : top + h, left : left + w], (h, w, 3)) / 255.0
        crops.append(np.clip(crop + rng.normal(0, SIGMA / 255.0, crop.shape), 0, 1))
    return np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2), dtype=np.float32)


def torch_variants(model: Any, x: np.ndarray, cuda: bool) -> dict[str, Any]:
    """name -> (call, output getter) or a skip reason."""
    import torch

    out: dict[str, Any] = {}
    device = torch.device("cuda" if cuda else "cpu")
    torch.backends.cudnn.benchmark = True
    fp32 = model.float().to(device).eval()
    xt = torch.from_numpy(x).to(device)

    def eager(net: Any, inp: Any, tf32: bool) -> tuple[Callable[[], None], Callable[[], Any]]:
        result: dict[str, Any] = {}

        def call() -> None:
            torch.backends.cudnn.allow_tf32 = tf32
            with torch.inference_mode():
                result["y"] = net(inp)
            if cuda:
                torch.cuda.synchronize()

        return call, lambda: result["y"]

    def graphed(net: Any, inp: Any, tf32: bool) -> tuple[Callable[[], None], Callable[[], Any]]:
        torch.backends.cudnn.allow_tf32 = tf32
        static = inp.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(3):
                net(static)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), torch.inference_mode():
            y = net(static)

        def call() -> None:
            graph.replay()
            torch.cuda.synchronize()

        # The graph reads `static` on every replay: it must outlive this function, or its memory
        # is reused and the replays compute on garbage (the first H100 run's 5 dB rows).
        KEEP_ALIVE.append(static)
        return call, lambda: y

    out["torch fp32"] = eager(fp32, xt, False)
    if not cuda:
        for name in ("torch tf32", "torch fp16 channels_last"):
            out[name] = f"{name.split()[1]} needs CUDA"
        for name in ("torch fp32", "torch tf32", "torch fp16 channels_last"):
            out[f"{name} + CUDA graph"] = "CUDA graphs need CUDA"
        return out
    out["torch fp32 + CUDA graph"] = guarded(lambda: graphed(fp32, xt, False))
    out["torch tf32"] = eager(fp32, xt, True)
    out["torch tf32 + CUDA graph"] = guarded(lambda: graphed(fp32, xt, True))
    import copy

    half = copy.deepcopy(fp32).half().to(memory_format=torch.channels_last)
    xh = xt.half().contiguous(memory_format=torch.channels_last)
    out["torch fp16 channels_last"] = eager(half, xh, True)
    out["torch fp16 channels_last + CUDA graph"] = guarded(lambda: graphed(half, xh, True))
    return out


def guarded(build: Callable[[], Any]) -> Any:
    """``build()``, or a one-line reason when it raises: the device time is spent once, so one
    variant that fails must not lose the others' measurements."""
    try:
        return build()
    except Exception as exc:  # anything torch or onnxruntime raises
        text = str(exc).strip()
        return f"failed: {type(exc).__name__}: {text.splitlines()[0] if text else ''}"[:300]


def first_calls(variants: dict[str, Any]) -> None:
    """Call each variant once before timing; one that raises becomes a skip reason."""
    for name, v in list(variants.items()):
        if not isinstance(v, str):
            failed = guarded(v[0])
            if isinstance(failed, str):
                variants[name] = failed


def runtime_variants(folder: Path, x: np.ndarray, cuda: bool) -> dict[str, Any]:
    """edgegen's Generator: name -> (call, output getter) or a skip reason."""
    device = "cuda" if cuda else "cpu"
    graph = {"cuda_graph": True}
    unfused = {"fuse_conv_bias": False}  # onnxruntime's default; edgegen's is on for fp16
    specs: list[tuple[str, str, dict[str, Any], bool]] = [
        # name, model, options, device-resident
        ("edgegen fp32", "fp32", {}, True),  # exact: no TF32, NCHW
        ("edgegen fp32, prefer_nhwc", "fp32", {"prefer_nhwc": True}, True),
        ("edgegen fp32, tf32", "fp32", {"tf32": True}, True),
        ("edgegen fp32, tf32 + CUDA graph", "fp32", {"tf32": True, **graph}, True),
        ("edgegen fp16 + CUDA graph", "fp16", graph, True),
        ("edgegen fp16 + CUDA graph, no fuse_conv_bias", "fp16", {**graph, **unfused}, True),
        ("edgegen fp16 I/O", "fp16io", {}, True),
        ("edgegen fp16 I/O, no fuse_conv_bias", "fp16io", unfused, True),
        ("edgegen fp16 I/O, no prefer_nhwc, no fuse_conv_bias", "fp16io",
         {"prefer_nhwc": False, **unfused}, True),
        ("edgegen fp16 I/O + CUDA graph", "fp16io", graph, True),
        ("edgegen fp16 I/O + CUDA graph, no fuse_conv_bias", "fp16io", {**graph, **unfused}, True),
        ("edgegen fp16 I/O + CUDA graph, infer()", "fp16io", graph, False),
    ]  # fmt: skip
    out: dict[str, Any] = {}
    for name, precision, options, resident in specs:
        if not cuda and options:
            out[name] = f"{', '.join(options)} need CUDA"
            continue
        out[name] = guarded(lambda p=precision, o=options, r=resident: runtime_variant(
            folder / f"model.{p}.onnx", x, device, o, r))  # fmt: skip
    return out


def runtime_variant(
    path: Path, x: np.ndarray, device: str, options: dict[str, Any], resident: bool
) -> tuple[Callable[[], None], Callable[[], Any]]:
    from edgegen.runtime import Generator

    gen = Generator(path, device=device, tile=0, io_binding=True, **options)
    KEEP_ALIVE.append(gen)
    xin = x.astype(gen._input_dtype)
    if resident:
        bound = gen.bound(xin.shape)
        bound.input.update_inplace(xin)
        return bound.run, lambda b=bound: b.output.numpy()
    result: dict[str, np.ndarray] = {}

    def call(g: Any = gen, r: dict[str, np.ndarray] = result, xi: np.ndarray = xin) -> None:
        r["y"] = g.infer(xi)

    return call, lambda r=result: r["y"]


def to_numpy(y: Any) -> np.ndarray:
    """A torch tensor (any dtype, device or memory format) or an array -> float32 NCHW."""
    if hasattr(y, "detach"):
        y = y.detach().float().cpu().contiguous().numpy()
    return np.asarray(y, dtype=np.float32)


def measure(
    calls: dict[str, Callable[[], None]], rounds: int, block: int
) -> dict[str, list[float]]:
    from edgegen.evaluation.timing import time_alternating

    return time_alternating(calls, rounds, block)


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from edgegen.train.checkpoint import load_model

    cuda = not args.smoke
    if cuda and not torch.cuda.is_available():
        raise SystemExit("gpu.py: torch sees no CUDA device (use --smoke on a CPU)")
    import onnxruntime as ort

    # medium first: its 1x3x512x512 row is the acceptance, and the JSON is rewritten after each
    # step, so a run cut short by the device's time limit still brings that back.
    archs = ("tiny",) if args.smoke else tuple(reversed(PRESETS))
    shapes = SMOKE_SHAPES if args.smoke else SHAPES
    result: dict[str, Any] = {
        "card": torch.cuda.get_device_name(0) if cuda else "none (smoke run on the CPU)",
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "providers": ort.get_available_providers(),
        "settings": {"rounds": args.rounds, "block": args.block, "sigma": SIGMA},
        "rows": [],
        "verify_on_device": {},
        "training": {},
        "acceptance": [],
        "complete": False,
    }
    rows: list[Row] = []
    for arch in archs:
        folder = args.models / arch
        if not (folder / "model.fp32.onnx").is_file():
            raise SystemExit(f"gpu.py: {folder} has no models; run --prepare first")
        model, _spec, _ckpt = load_model(folder / "run", prefer="best")
        for n, h, w in shapes:
            x = noisy_photos(n, h, w)
            variants = {**torch_variants(model, x, cuda), **runtime_variants(folder, x, cuda)}
            first_calls(variants)
            rows += measure_rows(arch, f"{n}x3x{h}x{w}", variants, args)
            result["rows"] = [asdict(r) for r in rows]
            if cuda and arch == "medium" and (n, h, w) == SHAPES[0] and args.profile:
                result["profile"] = guarded(lambda v=variants, f=folder: kernel_profile(v, f))
            write_json(result, cuda, args.json)
            print(f"measured {arch} {n}x3x{h}x{w}", file=sys.stderr, flush=True)
            del variants
            KEEP_ALIVE.clear()
            if cuda:
                torch.cuda.empty_cache()
        for precision, options in (
            ("fp32", {}),
            ("fp32", {"prefer_nhwc": True}),
            ("fp32", {"tf32": True}),
            ("fp16", {}),
            ("fp16io", {}),
            ("fp16io", {"fuse_conv_bias": False}),
        ):
            if options and not cuda:
                continue
            key = " ".join([arch, precision, *(f"{k}={v}" for k, v in options.items())])
            result["verify_on_device"][key] = guarded(
                lambda p=precision, f=folder, o=options: verify_on(f / f"model.{p}.onnx", cuda, o)
            )  # fmt: skip
        write_json(result, cuda, args.json)
    result["training"] = guarded(lambda: train_run(args.smoke, compile=False))
    result["acceptance"] = judge(rows, args.smoke)
    write_json(result, cuda, args.json)
    if cuda and args.compile:
        # torch.compile's first steps compile (tens of seconds): last, so it costs nothing else.
        result["training_compiled"] = guarded(lambda: train_run(False, compile=True))
    result["complete"] = True
    print(table(rows))
    for key, value in result["verify_on_device"].items():
        if isinstance(value, str):
            print(f"verify {key}: {value}")
        else:
            print(
                f"verify {key}: {'PASS' if value['passed'] else 'FAIL'} on {value['providers'][0]}"
            )
    for key in ("training", "training_compiled"):
        run = result.get(key)
        if isinstance(run, dict) and run.get("patches_per_s"):
            print(f"{key} ({run['arch']}, {run['amp_dtype']}, compile={run['compile']}): "
                  f"{run['patches_per_s']:.1f} patches/s")  # fmt: skip
        elif run is not None:
            print(f"{key}: {run}")
    if isinstance(result.get("profile"), str):
        print(f"profile: {result['profile']}")
    for item in result["acceptance"]:
        print(f"{item['status']:>4}  {item['check']}: {item['value']}")
    for target in write_json(result, cuda, args.json):
        print(f"wrote {target}")
    return result


def measure_rows(arch: str, label: str, variants: dict[str, Any], args: argparse.Namespace
                 ) -> list[Row]:  # fmt: skip
    """Time the variants that run (alternating blocks), and compare each output with torch
    fp32's."""
    from edgegen.runtime.metrics import psnr

    calls = {k: v[0] for k, v in variants.items() if not isinstance(v, str)}
    times = measure(calls, args.rounds, args.block)
    outputs = {k: to_numpy(v[1]()) for k, v in variants.items() if not isinstance(v, str)}
    reference = outputs["torch fp32"]
    medians = {k: statistics.median(t) * 1e3 for k, t in times.items()}
    torch_best = min(v for k, v in medians.items() if k.startswith("torch"))
    rows = []
    for name, v in variants.items():
        if isinstance(v, str):
            rows.append(Row(arch, label, name, None, None, None, None, v))
            continue
        ts = sorted(times[name])
        p95 = ts[min(len(ts) - 1, round(0.95 * (len(ts) - 1)))] * 1e3
        rows.append(
            Row(arch, label, name, round(medians[name], 4), round(p95, 4),
                round(medians[name] / torch_best, 4), round(psnr(reference, outputs[name]), 2))
        )  # fmt: skip
    return rows


def verify_on(path: Path, cuda: bool, options: dict[str, Any]) -> dict[str, Any]:
    """The model's golden samples, run on the card (``Generator.verify``)."""
    from edgegen.runtime import Generator

    gen = Generator(path, device="cuda" if cuda else "cpu", **options)
    # fp16io is made here, not by export: no manifest, its golden samples are fp16's copy.
    report = gen.verify(require_manifest=not path.name.startswith("model.fp16io."))
    rows = [vars(r) for r in report.rows]
    return {"passed": bool(report), "providers": gen.providers, "rows": rows,
            "failures": report.failures}  # fmt: skip


def write_json(result: dict[str, Any], cuda: bool, json_path: Path | None) -> list[Path]:
    """The result so far, to benchmarks/results/ (or --json) and to $OUT when it is set."""
    from edgegen.runtime.files import atomic_write_text

    name = f"gpu-{card_name(cuda)}.json"
    targets = [json_path] if json_path else [ROOT / "benchmarks" / "results" / name]
    if os.environ.get("OUT"):
        targets.append(Path(os.environ["OUT"]) / name)
    text = json.dumps(result, indent=2) + "\n"
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, text)
    return targets


def kernel_profile(variants: dict[str, Any], folder: Path, on: str = "CUDA") -> dict[str, Any]:
    """Where the GPU time goes, torch against onnxruntime, for a later tuning session without a
    card: the CUDA kernels of 20 calls of each variant (CUPTI sees onnxruntime's kernels too,
    they run in this process), and the op types of onnxruntime's optimised fp16 graph. The
    kernel tables go to $OUT/profile-medium-512.txt."""
    import collections

    import onnxruntime as ort
    import torch
    from torch.profiler import ProfilerActivity, profile

    names = [
        "torch fp16 channels_last", "torch fp16 channels_last + CUDA graph",
        "edgegen fp16 I/O", "edgegen fp16 I/O + CUDA graph",
        "edgegen fp16 I/O, no fuse_conv_bias", "edgegen fp16 I/O + CUDA graph, no fuse_conv_bias",
        "edgegen fp32", "edgegen fp32, tf32",
    ]  # fmt: skip
    summary: dict[str, Any] = {}
    text = []
    for name in names:
        v = variants.get(name)
        if v is None or isinstance(v, str):
            continue
        with profile(activities=[getattr(ProfilerActivity, on)]) as prof:
            for _ in range(20):
                v[0]()
            if on == "CUDA":
                torch.cuda.synchronize()
        kernels: dict[str, list[float]] = collections.defaultdict(list)
        for e in prof.events():
            if str(e.device_type).endswith(on):
                kernels[e.name].append(e.time_range.elapsed_us())
        total = sum(sum(t) for t in kernels.values()) / 20
        count = sum(len(t) for t in kernels.values()) / 20
        summary[name] = {"gpu_us_per_call": round(total, 1), "kernels_per_call": count}
        text.append(f"== {name}: {total:.1f} us of kernels per call, {count:g} kernels per call")
        for k, t in sorted(kernels.items(), key=lambda kv: -sum(kv[1]))[:25]:
            text.append(f"{sum(t) / 20:10.1f} us {len(t) / 20:6g}x  {k[:150]}")
    options = ort.SessionOptions()
    optimised = Path(tempfile.mkdtemp()) / "opt.onnx"
    options.optimized_model_filepath = str(optimised)
    ort.InferenceSession(str(folder / "model.fp16io.onnx"), options,
                         providers=[("CUDAExecutionProvider", {"prefer_nhwc": "1"})]
                         if on == "CUDA" else ["CPUExecutionProvider"])  # fmt: skip
    import onnx

    graph = onnx.load(str(optimised)).graph
    ops = collections.Counter(f"{n.domain or 'ai.onnx'}:{n.op_type}" for n in graph.node)
    summary["ort_optimised_ops"] = dict(ops)
    text.append(f"== onnxruntime's optimised fp16 I/O graph (prefer_nhwc): {dict(ops)}")
    if os.environ.get("OUT"):
        (Path(os.environ["OUT"]) / "profile-medium-512.txt").write_text("\n".join(text) + "\n")
    print("\n".join(text), file=sys.stderr)
    return summary


def judge(rows: list[Row], smoke: bool) -> list[dict[str, str]]:
    """The two goals, PASS/FAIL (n/a on the CPU smoke run)."""
    if smoke:
        return [{"check": "GPU thresholds", "status": "n/a", "value": "smoke run on the CPU"}]
    medium = [r for r in rows if r.arch == "medium" and r.shape == "1x3x512x512" and r.median_ms]
    rt = [r for r in medium if r.variant.startswith("edgegen fp16") and "infer()" not in r.variant]
    if not rt:
        return [{"check": "GPU thresholds", "status": "FAIL", "value": "no runtime fp16 row ran"}]
    best_rt = min(rt, key=lambda r: r.median_ms or 0)
    best_torch = min((r for r in medium if r.variant.startswith("torch")),
                     key=lambda r: r.median_ms or 0)  # fmt: skip
    assert best_rt.median_ms is not None and best_torch.median_ms is not None
    ratio = best_rt.median_ms / best_torch.median_ms
    fp16 = [r for r in rows if r.variant.startswith("edgegen fp16") and r.psnr_vs_torch_fp32]
    worst = min(fp16, key=lambda r: r.psnr_vs_torch_fp32 or 0)
    return [
        {
            "check": f"runtime best fp16 <= {MAX_RATIO}x torch best (medium, 1x3x512x512)",
            "status": "PASS" if ratio <= MAX_RATIO else "FAIL",
            "value": f"{ratio:.3f}x ({best_rt.variant} {best_rt.median_ms:.3f} ms vs "
            f"{best_torch.variant} {best_torch.median_ms:.3f} ms)",
        },
        {
            "check": f"runtime fp16 PSNR vs torch fp32 >= {MIN_FP16_PSNR} dB",
            "status": "PASS" if (worst.psnr_vs_torch_fp32 or 0) >= MIN_FP16_PSNR else "FAIL",
            "value": f"lowest {worst.psnr_vs_torch_fp32:.2f} dB ({worst.arch} {worst.shape} "
            f"{worst.variant})",
        },
    ]


def train_run(smoke: bool, compile: bool) -> dict[str, Any]:
    """A short AMP training run through edgegen's trainer (channels_last on CUDA); its
    patches/s."""
    import torch

    from edgegen.train.config import TrainConfig
    from edgegen.train.trainer import pick_amp_dtype, train

    with tempfile.TemporaryDirectory(prefix="edgegen-gpu-train-") as tmp:
        cfg = TrainConfig(
            arch="tiny" if smoke else "small",
            patch=32 if smoke else 64,
            batch=2 if smoke else 32,
            workers=0 if smoke else 8,
            steps=2 if smoke else 200,
            val_every=2 if smoke else 100,
            device="cpu" if smoke else "cuda",
            compile=compile,
            out=str(Path(tmp) / "run"),
        )
        t0 = time.perf_counter()
        result = train(cfg, progress=False, log=lambda m: print(m, file=sys.stderr))
        dtype = pick_amp_dtype(cfg, not smoke and torch.cuda.is_available())
        return {
            "arch": cfg.arch,
            "steps": result.step,
            "batch": cfg.batch,
            "patch": cfg.patch,
            "amp_dtype": str(dtype).replace("torch.", "") if dtype else "none (CPU)",
            "channels_last": cfg.channels_last and not smoke,
            "compile": compile,
            "patches_per_s": result.patches_per_s,
            "val_psnr": result.metrics.get("psnr"),
            "wall_s": round(time.perf_counter() - t0, 2),
        }


def table(rows: list[Row]) -> str:
    from edgegen.runtime.metrics import PSNR_CAP

    head = (
        f"{'arch':>7} {'shape':>12} {'variant':42} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'/torch':>7} {'PSNR':>7}"
    )
    lines = [head]
    for r in rows:
        if r.skipped:
            lines.append(f"{r.arch:>7} {r.shape:>12} {r.variant:42} skipped: {r.skipped}")
            continue
        lines.append(
            f"{r.arch:>7} {r.shape:>12} {r.variant:42} {r.median_ms:8.3f} {r.p95_ms:8.3f} "
            f"{r.vs_torch_best:6.2f}x {r.psnr_vs_torch_fp32:7.2f}"
        )
    lines.append(
        "/torch: median over torch's best median at that arch and shape; PSNR in dB against "
        f"torch fp32's output ({PSNR_CAP:g} = identical)"
    )
    return "\n".join(lines)


def run_gpu_tests(models: Path) -> int:
    """tests/gpu's @pytest.mark.gpu tests in this process (edgegen importable as above), with
    the pytest that --prepare copied into .gpu/site where none is installed."""
    try:
        import pytest
    except ModuleNotFoundError:
        sys.path.insert(0, str(models / "site"))
        import pytest
    os.chdir(ROOT)
    args = ["-m", "gpu", "-v", "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestConfigWarning"]
    return int(pytest.main([*args, "tests/gpu"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--prepare", action="store_true", help="export the models into --models")
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny sizes (tests)")
    ap.add_argument("--models", type=Path, default=DEFAULT_MODELS)
    ap.add_argument("--small-run", type=Path, default=ROOT / "runs" / "dn-small")
    ap.add_argument("--json", type=Path, help="write here instead of benchmarks/results/")
    ap.add_argument("--rounds", type=int, default=10, help="alternating rounds")
    ap.add_argument("--block", type=int, default=10, help="calls per variant per round")
    ap.add_argument("--tests", action="store_true", help="run the @pytest.mark.gpu tests")
    ap.add_argument(
        "--no-profile",
        dest="profile",
        action="store_false",
        help="skip the kernel profile of medium at 1x3x512x512",
    )
    ap.add_argument(
        "--no-compile",
        dest="compile",
        action="store_false",
        help="skip the torch.compile training run",
    )
    args = ap.parse_args()
    ensure_edgegen_importable()
    if args.tests:
        raise SystemExit(run_gpu_tests(args.models))
    if args.prepare:
        prepare(args.models, args.smoke, args.small_run)
        return
    import torch  # noqa: F401 - before onnxruntime: it brings CUDA and cuDNN into the process

    run_benchmark(args)


if __name__ == "__main__":
    main()
