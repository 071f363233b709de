"""GPU: PyTorch against edgegen's runtime on one CUDA card, in one run (issue 8).

Prints a table and writes JSON (benchmarks/results/gpu-<card>.json, and $OUT/gpu-<card>.json
when $OUT is set). For the `small` and `medium` architectures at 1x3x512x512 and 8x3x256x256:

- PyTorch: fp32, tf32, fp16 channels_last, each also replayed from a CUDA graph
  (cudnn.benchmark on, weights and input already on the GPU);
- edgegen's runtime (`Generator` on CUDA, device-resident IO binding through `Generator.bound`):
  fp32 and fp16 (float32 I/O, as export writes it) and fp16 with float16 I/O, with prefer_nhwc,
  with and without a CUDA graph, one without prefer_nhwc, and one through `Generator.infer`
  (host copies included);
- per variant: median and p95 ms (alternating blocks of calls), the ratio to torch's best, and
  PSNR of its output against torch fp32 on a noisy real photo;
- the models' golden samples verified on CUDA (`Generator.verify`), and a short AMP training run
  (patches/s).

The acceptance of issue 8 is printed as PASS/FAIL: the runtime's best fp16 <= 1.05x torch's best
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
  device call 5 (the last, small piece, the installer, the models; then the measurements):
      run(carry=[".ortgpu/part4", ".ortgpu/SHA256", ".ortgpu/install_ort_gpu.sh", ".gpu"],
          timeout_s=540, command=
          "cp .ortgpu/part4 .ortgpu/SHA256 /tmp/ortgpu/ && bash .ortgpu/install_ort_gpu.sh "
          "&& export PYTHONPATH=/tmp/site && python3 benchmarks/gpu.py; "
          "python3 benchmarks/gpu.py --tests")
  then here: copy files_at/gpu-<card>.json to benchmarks/results/, and put its table in the
  README (### GPU) and the issue.
If a piece's call fails, rerun that call alone; /tmp/ortgpu keeps the pieces already copied as
long as the machine stays warm (give_back loses them). The measurement itself should take 3-4
minutes on an H100 (an estimate: it has not run on a GPU yet); with less than 7 minutes of device
time left before call 5, add `--rounds 4` (fewer timed calls per variant) to the first command.
Call give_back after call 5 unless rerunning at once.
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
KEEP_ALIVE: list[Any] = []  # the Generators whose bound buffers are being timed
PYTEST_PACKAGES = ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "py.py")


def ensure_edgegen_importable() -> None:
    """Import edgegen from this checkout when it is not installed (the GPU machine): a symlink
    tree <tmp>/edgegen/{runtime,train,export,models} -> the repo's folders. edgegen is a
    namespace package (there is no edgegen/__init__.py), so the links are all it needs."""
    try:
        import edgegen.runtime
    except ModuleNotFoundError:
        tree = Path(tempfile.mkdtemp(prefix="edgegen-tree-"))
        (tree / "edgegen").mkdir()
        for name in ("runtime", "train", "export", "models"):
            (tree / "edgegen" / name).symlink_to(ROOT / name, target_is_directory=True)
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

    from edgegen.export.api import ExportConfig, export_checkpoint
    from edgegen.export.fp16 import convert_fp16
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

        return call, lambda: y

    out["torch fp32"] = eager(fp32, xt, False)
    if not cuda:
        for name in ("torch tf32", "torch fp16 channels_last"):
            out[name] = f"{name.split()[1]} needs CUDA"
        for name in ("torch fp32", "torch tf32", "torch fp16 channels_last"):
            out[f"{name} + CUDA graph"] = "CUDA graphs need CUDA"
        return out
    out["torch fp32 + CUDA graph"] = graphed(fp32, xt, False)
    out["torch tf32"] = eager(fp32, xt, True)
    out["torch tf32 + CUDA graph"] = graphed(fp32, xt, True)
    import copy

    half = copy.deepcopy(fp32).half().to(memory_format=torch.channels_last)
    xh = xt.half().contiguous(memory_format=torch.channels_last)
    out["torch fp16 channels_last"] = eager(half, xh, True)
    out["torch fp16 channels_last + CUDA graph"] = graphed(half, xh, True)
    return out


def runtime_variants(folder: Path, x: np.ndarray, cuda: bool) -> dict[str, Any]:
    """edgegen's Generator: name -> (call, output getter) or a skip reason."""
    from edgegen.runtime import Generator

    device = "cuda" if cuda else "cpu"
    specs: list[tuple[str, str, dict[str, Any], bool]] = [
        # name, model, options, device-resident
        ("edgegen fp32", "fp32", {}, True),
        ("edgegen fp32 + CUDA graph", "fp32", {"cuda_graph": True}, True),
        ("edgegen fp16", "fp16", {}, True),
        ("edgegen fp16 + CUDA graph", "fp16", {"cuda_graph": True}, True),
        ("edgegen fp16 I/O", "fp16io", {}, True),
        ("edgegen fp16 I/O, no prefer_nhwc", "fp16io", {"prefer_nhwc": False}, True),
        ("edgegen fp16 I/O + CUDA graph", "fp16io", {"cuda_graph": True}, True),
        ("edgegen fp16 I/O + CUDA graph, infer()", "fp16io", {"cuda_graph": True}, False),
    ]
    out: dict[str, Any] = {}
    keep = KEEP_ALIVE
    keep.clear()
    for name, precision, options, resident in specs:
        if not cuda and (options.get("cuda_graph") or "prefer_nhwc" in options):
            out[name] = "cuda_graph and prefer_nhwc need CUDA"
            continue
        gen = Generator(
            folder / f"model.{precision}.onnx", device=device, tile=0, io_binding=True, **options
        )
        xin = x.astype(gen._input_dtype)
        if resident:
            bound = gen.bound(xin.shape)
            bound.input.update_inplace(xin)
            out[name] = (bound.run, lambda b=bound: b.output.numpy())
        else:
            result: dict[str, np.ndarray] = {}

            def call(g: Any = gen, r: dict[str, np.ndarray] = result, xi: np.ndarray = xin) -> None:
                r["y"] = g.infer(xi)

            out[name] = (call, lambda r=result: r["y"])
        keep.append(gen)
    return out


def to_numpy(y: Any) -> np.ndarray:
    """A torch tensor (any dtype, device or memory format) or an array -> float32 NCHW."""
    if hasattr(y, "detach"):
        y = y.detach().float().cpu().contiguous().numpy()
    return np.asarray(y, dtype=np.float32)


def measure(
    calls: dict[str, Callable[[], None]], rounds: int, block: int
) -> dict[str, list[float]]:
    from edgegen.runtime.bench import time_alternating

    return time_alternating(calls, rounds, block)


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from edgegen.runtime.files import atomic_write_text
    from edgegen.runtime.metrics import psnr
    from edgegen.train.checkpoint import load_model

    cuda = not args.smoke
    if cuda and not torch.cuda.is_available():
        raise SystemExit("gpu.py: torch sees no CUDA device (use --smoke on a CPU)")
    import onnxruntime as ort

    archs = ("tiny",) if args.smoke else PRESETS
    shapes = SMOKE_SHAPES if args.smoke else SHAPES
    rows: list[Row] = []
    verify: dict[str, Any] = {}
    for arch in archs:
        folder = args.models / arch
        if not (folder / "model.fp32.onnx").is_file():
            raise SystemExit(f"gpu.py: {folder} has no models; run --prepare first")
        model, _spec, _ckpt = load_model(folder / "run", prefer="best")
        for n, h, w in shapes:
            label = f"{n}x3x{h}x{w}"
            x = noisy_photos(n, h, w)
            variants = {**torch_variants(model, x, cuda), **runtime_variants(folder, x, cuda)}
            calls = {k: v[0] for k, v in variants.items() if not isinstance(v, str)}
            times = measure(calls, args.rounds, args.block)
            outputs = {k: to_numpy(v[1]()) for k, v in variants.items() if not isinstance(v, str)}
            reference = outputs["torch fp32"].astype(np.float32)
            medians = {k: statistics.median(t) * 1e3 for k, t in times.items()}
            torch_best = min(v for k, v in medians.items() if k.startswith("torch"))
            for name, v in variants.items():
                if isinstance(v, str):
                    rows.append(Row(arch, label, name, None, None, None, None, v))
                    continue
                ts = sorted(times[name])
                p95 = ts[min(len(ts) - 1, round(0.95 * (len(ts) - 1)))] * 1e3
                rows.append(
                    Row(
                        arch,
                        label,
                        name,
                        round(medians[name], 4),
                        round(p95, 4),
                        round(medians[name] / torch_best, 4),
                        round(psnr(reference, outputs[name].astype(np.float32)), 2),
                    )
                )
            print(f"measured {arch} {label}", file=sys.stderr, flush=True)
            del variants, calls
            if cuda:
                torch.cuda.empty_cache()
        for precision in ("fp32", "fp16", "fp16io"):
            from edgegen.runtime import Generator

            gen = Generator(folder / f"model.{precision}.onnx", device="cuda" if cuda else "cpu")
            report = gen.verify()
            verify[f"{arch} {precision}"] = {"passed": bool(report), "providers": gen.providers}
    training = train_run(args.smoke)
    acceptance = judge(rows, args.smoke)
    result = {
        "card": torch.cuda.get_device_name(0) if cuda else "none (smoke run on the CPU)",
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "providers": ort.get_available_providers(),
        "settings": {"rounds": args.rounds, "block": args.block, "sigma": SIGMA},
        "rows": [asdict(r) for r in rows],
        "verify_on_device": verify,
        "training": training,
        "acceptance": acceptance,
    }
    print(table(rows))
    for key, value in verify.items():
        print(f"verify {key}: {'PASS' if value['passed'] else 'FAIL'} on {value['providers'][0]}")
    if training.get("patches_per_s"):
        print(f"AMP training ({training['arch']}, {training['amp_dtype']}): "
              f"{training['patches_per_s']:.1f} patches/s")  # fmt: skip
    for item in acceptance:
        print(f"{item['status']:>4}  {item['check']}: {item['value']}")
    text = json.dumps(result, indent=2) + "\n"
    name = f"gpu-{card_name(cuda)}.json"
    targets = [args.json] if args.json else [ROOT / "benchmarks" / "results" / name]
    if os.environ.get("OUT"):
        targets.append(Path(os.environ["OUT"]) / name)
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, text)
        print(f"wrote {target}")
    return result


def judge(rows: list[Row], smoke: bool) -> list[dict[str, str]]:
    """Issue 8's two thresholds, PASS/FAIL (n/a on the CPU smoke run)."""
    if smoke:
        return [{"check": "GPU thresholds", "status": "n/a", "value": "smoke run on the CPU"}]
    medium = [r for r in rows if r.arch == "medium" and r.shape == "1x3x512x512" and r.median_ms]
    rt = [r for r in medium if r.variant.startswith("edgegen fp16") and "infer()" not in r.variant]
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


def train_run(smoke: bool) -> dict[str, Any]:
    """A short AMP training run through edgegen's trainer; its patches/s."""
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
