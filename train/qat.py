"""Quantization-aware fine-tuning: fake quantization that matches onnxruntime's static QDQ int8.

What export's int8 (``edgegen.export.int8``, ``quantize_static`` in QDQ format, U8S8, per
channel) does to a residual generator, and what :class:`QATGenerator` simulates:

- every activation tensor that gets a QuantizeLinear/DequantizeLinear pair: the model input,
  each conv's output (after its ReLU, which the quantizer removes by giving the conv output the
  ReLU's range, zero point 0) and each residual Add's output. uint8, asymmetric:
  ``scale = (rmax - rmin) / 255`` with the range widened to hold 0,
  ``zero_point = round(-rmin / scale)``, ``q = clip(round(x / scale) + zero_point, 0, 255)``;
- weights: int8, per output channel, symmetric on [-127, 127] (``scale = max|w| / 127``, zero
  point 0), from the weights as they are (no learned range);
- biases: int32 with ``scale = input scale * weight scale`` (zero point 0).

The global skip stays float, as export keeps it (``edgegen.export.int8.FLOAT_NODE_PREFIXES``):
the output Add of ``F(x) + x`` and, for super-resolution, the bicubic upsampling of the input.
Super-resolution adds one quantized tensor, the sub-pixel conv's shuffled output (DepthToSpace,
which the quantizer gives its own range).

Each activation's scale and zero point are learned with the weights (straight-through rounding,
the LSQ+ gradients), starting from what MinMax calibration would give.
Export maps them onto the ONNX tensors by the convs' weight names
(:mod:`edgegen.export.qat_ranges`) and hands them to ``quantize_static`` as TensorQuantOverrides.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgegen.runtime.errors import EdgegenError

from .archs import ResidualGenerator

QMAX = 255  # uint8 activations
WMAX = 127  # int8 symmetric weights
QAT_STEPS = 100  # enough on the small denoiser (benchmarks/auto_quant.py)
QAT_LR = 1e-4
RANGE_LR = 1e-2  # relative to each scale's starting value
ZP_LR = 0.05  # zero-point levels


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round half to even (as QuantizeLinear does) forward, identity backward."""
    return x + (torch.round(x) - x).detach()


def act_qparams(rmin: float, rmax: float) -> tuple[float, int]:
    """(scale, zero_point) as onnxruntime's compute_scale_zp gives them for uint8."""
    lo, hi = min(float(rmin), 0.0), max(float(rmax), 0.0)
    scale = (hi - lo) / QMAX
    if np.float32(scale) < np.finfo(np.float32).tiny:
        return 1.0, 0
    zero_point = int(np.clip(np.round(-lo / scale), 0, QMAX))
    return float(np.float32(scale)), zero_point


class ActQuant(nn.Module):
    """uint8 asymmetric fake quantization of one tensor, with a learned scale and zero point.

    torch's fused learnable fake quantization (the LSQ+ kernel behind
    ``torch.ao.quantization``'s learnable fake-quant) rounds the zero point to an integer in
    [0, 255] and the values half to even, as QuantizeLinear does. In ``observing`` mode it
    passes values through and records their min/max (MinMax calibration) instead.
    """

    def __init__(self, nonnegative: bool = False) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([1.0]))
        # After a ReLU the quantizer's range starts at 0: the zero point stays 0, not learned.
        self.zero_point = nn.Parameter(torch.tensor([0.0]), requires_grad=not nonnegative)
        self.nonnegative = nonnegative
        self.observing = False
        self.observed = (float("inf"), float("-inf"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observing:
            lo, hi = self.observed
            self.observed = (min(lo, float(x.min())), max(hi, float(x.max())))
            return x
        out: torch.Tensor = torch._fake_quantize_learnable_per_tensor_affine(
            x, self.scale.clamp_min(1e-8), self.zero_point, 0, QMAX, 1.0
        )
        return out

    def set_range(self, rmin: float, rmax: float) -> None:
        """Scale and zero point as onnxruntime computes them for this range."""
        scale, zero_point = act_qparams(0.0 if self.nonnegative else rmin, rmax)
        with torch.no_grad():
            self.scale.fill_(scale)
            self.zero_point.fill_(float(zero_point))

    def qparams(self) -> tuple[float, int]:
        """The (float32 scale, integer zero point) the forward pass uses."""
        scale = float(np.float32(max(float(self.scale.detach()), 1e-8)))
        zero_point = int(np.clip(np.round(float(self.zero_point.detach())), 0, QMAX))
        return scale, zero_point


def fake_quant_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel symmetric int8 (scale = max|w| / 127); returns (weight, scales)."""
    absmax = weight.detach().abs().amax(dim=(1, 2, 3)).clamp_min(1e-12)
    scale = (absmax / WMAX).float()
    zero = torch.zeros_like(scale, dtype=torch.int32)
    q = torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -WMAX, WMAX)
    return q, scale


def fake_quant_bias(bias: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """int32 bias on the grid input scale x weight scale (no clipping: 2^31 levels)."""
    return _round_ste(bias / scale) * scale


def check_supported(model: nn.Module) -> None:
    """QAT mirrors the graph of the ReLU generator (any scale); refuse others with one line."""
    if not isinstance(model, ResidualGenerator):
        raise EdgegenError(f"QAT supports edgegen's residual generator, not {type(model).__name__}")
    p = model.params
    problems = []
    if p.act != "relu":
        problems.append(f"activation {p.act}")
    if p.batch_norm:
        problems.append("batch norm")
    if p.act_after_add:
        problems.append("act-after-add")
    if p.res_scale != 1.0:
        problems.append(f"res-scale {p.res_scale}")
    if p.in_channels != p.out_channels:
        problems.append("different input and output channels")
    if problems:
        raise EdgegenError(
            "QAT supports the ReLU generator without batch norm; this model has "
            + ", ".join(problems)
        )


class QATGenerator(nn.Module):
    """A :class:`ResidualGenerator`'s forward with fake quantization where onnxruntime's QDQ
    quantizer puts its Q/DQ pairs. Range names: ``input``, ``<conv>`` (the conv's output, after
    its ReLU) and ``<conv>.add`` (the residual Add that consumes the conv's output), with
    ``<conv>`` the conv's module name (``head``, ``body.0.body.0``, ``tail``...); for SR also
    ``upsample.0`` (the sub-pixel conv, after its ReLU) and ``upsample.0.shuffle`` (its pixel
    shuffle's output). The output Add (``tail`` + the skip) is float."""

    def __init__(self, model: ResidualGenerator) -> None:
        super().__init__()
        check_supported(model)
        self.model = model
        names = ["input", "head", "body_tail", "body_tail.add", "tail"]
        for i in range(len(model.body)):
            names += [f"body.{i}.body.0", f"body.{i}.body.2", f"body.{i}.body.2.add"]
        self.sr = model.params.scale > 1
        if self.sr:
            names += ["upsample.0", "upsample.0.shuffle"]
        self.quant = nn.ModuleDict({_key(n): ActQuant(nonnegative=_after_relu(n)) for n in names})

    def q(self, name: str, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.quant[_key(name)](x)
        return out

    def conv(self, conv: nn.Module, x: torch.Tensor, input_name: str) -> torch.Tensor:
        assert isinstance(conv, nn.Conv2d)
        quant = self.quant[_key(input_name)]
        assert isinstance(quant, ActQuant)
        if quant.observing:
            return F.conv2d(x, conv.weight, conv.bias, padding=conv.padding)
        weight, w_scale = fake_quant_weight(conv.weight)
        bias = conv.bias
        if bias is not None:
            bias = fake_quant_bias(bias, quant.scale.detach().clamp_min(1e-8) * w_scale)
        return F.conv2d(x, weight, bias, padding=conv.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = self.q("input", x)
        head = self.q("head", self.conv(m.head, x, "input"))
        feat, feat_name = head, "head"
        for i, block in enumerate(m.body):
            a, b = f"body.{i}.body.0", f"body.{i}.body.2"
            layers = block.body
            assert isinstance(layers, nn.Sequential)
            h = self.q(a, F.relu(self.conv(layers[0], feat, feat_name)))
            h = self.q(b, self.conv(layers[2], h, a))
            feat, feat_name = self.q(f"{b}.add", feat + h), f"{b}.add"
        t = self.q("body_tail", self.conv(m.body_tail, feat, feat_name))
        feat = self.q("body_tail.add", head + t)
        if not self.sr:
            return self.q("tail", self.conv(m.tail, feat, "body_tail.add")) + x
        upsample = m.upsample
        assert isinstance(upsample, nn.Sequential)
        up = self.q("upsample.0", F.relu(self.conv(upsample[0], feat, "body_tail.add")))
        up = self.q("upsample.0.shuffle", upsample[1](up))
        return self.q("tail", self.conv(m.tail, up, "upsample.0.shuffle")) + m.skip(x)

    def observe(self, observing: bool) -> None:
        for quant in self.quant.values():
            assert isinstance(quant, ActQuant)
            quant.observing = observing

    def qparams(self) -> dict[str, tuple[float, int]]:
        """Range name -> (scale, zero point) of every fake-quantized tensor."""
        out = {}
        for key, quant in self.quant.items():
            assert isinstance(quant, ActQuant)
            out[key.replace("/", ".")] = quant.qparams()
        return out


def _after_relu(name: str) -> bool:
    """Whether the range's tensor follows a ReLU (zero point 0, as the quantizer gives it)."""
    return (name.startswith("body.") and name.endswith("body.0")) or name.startswith("upsample.")


def _key(name: str) -> str:
    return name.replace(".", "/")  # ModuleDict keys may not hold dots


@dataclass
class QATResult:
    """The fine-tuned float weights, the learned ranges and how the fine-tune went."""

    state_dict: dict[str, torch.Tensor]
    qparams: dict[str, tuple[float, int]]  # range name -> (scale, zero point)
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    loss: str = "l1"

    def record(self) -> dict[str, Any]:
        """What a checkpoint (and a manifest) keeps: JSON-safe, exact float32 scales."""
        return {
            "qparams": {k: [scale, zp] for k, (scale, zp) in self.qparams.items()},
            "steps": self.steps,
            "seconds": round(self.seconds, 2),
            "loss": self.loss,
            "final_loss": self.losses[-1] if self.losses else None,
            "scheme": "uint8 asymmetric activations, int8 per-channel symmetric weights, "
            "int32 biases (onnxruntime QDQ U8S8)",
        }


def calibrate(qat: QATGenerator, inputs: list[np.ndarray]) -> None:
    """Initial ranges: the min/max of every quantized tensor over ``inputs`` (MinMax)."""
    qat.eval()
    for quant in qat.quant.values():
        assert isinstance(quant, ActQuant)
        quant.observed = (float("inf"), float("-inf"))
    qat.observe(True)
    with torch.no_grad():
        for x in inputs:
            qat(torch.from_numpy(x))
    qat.observe(False)
    for quant in qat.quant.values():
        assert isinstance(quant, ActQuant)
        quant.set_range(*quant.observed)


def finetune(
    model: ResidualGenerator,
    calib: list[np.ndarray],
    batches: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    steps: int = QAT_STEPS,
    lr: float = QAT_LR,
    range_lr: float = RANGE_LR,
    loss: str = "l1",
    progress: bool = True,
    init: dict[str, tuple[float, int]] | None = None,
) -> QATResult:
    """Fine-tune a copy of ``model`` with fake quantization for ``steps`` steps.

    ``calib`` are calibration inputs (the same crops int8 export calibrates on) that set the
    starting ranges by MinMax; ``init`` (range name -> scale, zero point) overrides those it
    names, e.g. with a better calibration's. ``batches(step)`` returns one (degraded, clean)
    NCHW batch. The learning rate decays along a cosine to 0; the ranges learn at ``range_lr``.
    ``model`` is not changed.
    """
    import copy

    from tqdm import tqdm

    from .trainer import loss_function

    if steps < 0:
        raise EdgegenError(f"QAT steps must be >= 0, got {steps}")
    net = copy.deepcopy(model).float().cpu()
    qat = QATGenerator(net)
    calibrate(qat, calib)
    for name, (scale, zero_point) in (init or {}).items():
        if _key(name) not in qat.quant:
            raise EdgegenError(
                f"QAT cannot match the graph's tensor {name!r} to a layer of the network: it "
                "maps them by the TorchScript trace's names; export with --exporter trace"
            )
        quant = qat.quant[_key(name)]
        assert isinstance(quant, ActQuant)
        with torch.no_grad():
            quant.scale.fill_(scale)
            quant.zero_point.fill_(0.0 if quant.nonnegative else float(zero_point))
    criterion = loss_function(loss)
    weights = [p for n, p in qat.named_parameters() if not n.startswith("quant.")]
    groups: list[dict[str, Any]] = [{"params": weights, "lr": lr}]
    for quant in qat.quant.values():
        assert isinstance(quant, ActQuant)
        # Adam moves a parameter by about its learning rate per step whatever the gradient's
        # size: a scale moves by range_lr of itself, a zero point by ZP_LR levels.
        groups.append({"params": [quant.scale], "lr": range_lr * float(quant.scale.detach())})
        if quant.zero_point.requires_grad:
            groups.append({"params": [quant.zero_point], "lr": ZP_LR})
    optimizer = torch.optim.Adam(groups)
    bases = [float(g["lr"]) for g in groups]
    losses: list[float] = []
    start = time.perf_counter()
    qat.train()
    bar = tqdm(
        range(steps),
        desc="QAT",
        unit="step",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
        mininterval=0.5 if sys.stderr.isatty() else 10.0,
    )
    for step in bar:
        factor = 0.5 * (1.0 + math.cos(math.pi * step / max(steps, 1)))
        for group, base in zip(optimizer.param_groups, bases, strict=True):
            group["lr"] = base * factor
        degraded, clean = batches(step)
        loss_value = criterion(qat(degraded), clean)
        optimizer.zero_grad(set_to_none=True)
        loss_value.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        losses.append(float(loss_value.detach()))
        if step % 20 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
    bar.close()
    qat.eval()
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    return QATResult(state, qat.qparams(), steps, time.perf_counter() - start, losses, loss)


def patch_batches(
    photos: list[Any],
    degradation: Any,
    patch: int,
    batch: int,
    seed: int = 1234,
    scale: int = 1,
) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
    """``step -> (degraded, clean)`` batches of training patches, the same for the same seed;
    ``patch`` is the clean side (the degraded one is ``patch / scale``)."""
    from .data import PatchDataset

    dataset = PatchDataset(photos, degradation, patch, seed, scale)

    def get(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        items = [dataset[step * batch + i] for i in range(batch)]
        return torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])

    return get


def qat_from_run(
    source: str,
    out: str,
    steps: int | None = None,
    data: str | None = None,
    progress: bool = True,
    calib_count: int = 32,
) -> tuple[Any, QATResult]:
    """``edgegen train --qat-from RUN``: fine-tune RUN's best checkpoint with fake quantization
    and write ``out/best.safetensors`` holding the fine-tuned weights and, in its record, the
    learned ranges (``record["qat"]``), which ``edgegen export --precision int8`` then uses.
    ``data`` defaults to the photos RUN trained on. Returns (checkpoint path, result)."""
    from pathlib import Path

    from edgegen.evaluation.degrade import degradation_from_spec
    from edgegen.evaluation.photos import Photo, bundled_paths, find_images, load_all
    from edgegen.runtime.files import sha256_file

    from .checkpoint import load_model, save_checkpoint

    model, spec, ckpt = load_model(source, prefer="best")
    check_supported(model)
    run = Path(out)
    if any((run / f"{n}.safetensors").exists() for n in ("best", "last")):
        raise EdgegenError(f"{run} already holds a run; give --out a new folder")
    config = dict(ckpt.record.get("config") or {})
    source_data = data or str(config.get("data") or "bundled")
    paths = bundled_paths("train") if source_data == "bundled" else find_images(Path(source_data))
    patch, batch = int(config.get("patch") or 64), int(config.get("batch") or 16)
    photos: list[Photo] = [
        p for p in load_all(paths, spec.in_channels).photos if min(p.height, p.width) >= patch
    ]
    if not photos:
        raise EdgegenError(
            f"no readable training photo of at least {patch} pixels in {source_data}"
        )
    degradation = degradation_from_spec(spec.degradation)
    # Starting ranges: MinMax over degraded training patches (other draws than the fine-tune's).
    calib_batches = patch_batches(photos, degradation, patch, 1, seed=4321, scale=spec.scale)
    calib = [calib_batches(i)[0].numpy() for i in range(calib_count)]
    batches = patch_batches(photos, degradation, patch, batch, scale=spec.scale)
    loss = str(config.get("loss") or "l1")
    result = finetune(model, calib, batches, steps=steps or QAT_STEPS, loss=loss, progress=progress)
    record = {
        "step": ckpt.step,
        "config": config,
        "spec": spec.to_dict(),
        "metrics": {},  # the source run's metrics describe other weights
        "qat": result.record(),
        "qat_from": {"checkpoint": str(ckpt.path), "sha256": sha256_file(ckpt.path)},
    }
    run.mkdir(parents=True, exist_ok=True)
    path = save_checkpoint(run, "best", record, result.state_dict)
    return path, result
