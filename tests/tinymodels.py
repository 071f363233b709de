"""Real exported models for the runtime tests: tiny untrained generators through edgegen.export,
and hand-built ONNX graphs (identity, wrong shapes) through onnx.helper. Exports are cached per
test process, so each costs its few seconds once."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgegen.runtime.spec import METADATA_KEY, ModelSpec

FAST = {"calib_count": 4, "progress": False}
_ROOT = Path(tempfile.mkdtemp(prefix="edgegen-runtime-tests-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)


def tiny_checkpoint(root: Path, **cfg_options: object) -> Path:
    """A checkpoint as training writes it, for a tiny untrained model (no training needed)."""
    import torch

    from edgegen.train.checkpoint import save_checkpoint
    from edgegen.train.config import TrainConfig
    from edgegen.train.trainer import build_model, make_spec

    cfg = TrainConfig(**{"arch": "tiny", "channels": 6, "out": str(root), **cfg_options})
    torch.manual_seed(0)
    model = build_model(cfg)
    spec = make_spec(cfg, model)
    record = {"step": 0, "config": cfg.to_dict(), "spec": spec.to_dict(), "metrics": {"psnr": 1.0}}
    return save_checkpoint(root, "best", record, model.state_dict())


@functools.cache
def exported(precisions: tuple[str, ...] = ("fp32",), scale: int = 1) -> Path:
    """The export folder of a tiny model (denoise, or sr at ``scale``), with golden samples."""
    from edgegen.export.transaction import ExportConfig, export_checkpoint

    name = f"{'-'.join(precisions)}-x{scale}"
    options = {"task": "sr", "scale": scale} if scale > 1 else {}
    ckpt = tiny_checkpoint(_ROOT / name / "run", **options)
    out = _ROOT / name / "out"
    verify = "int8" in precisions or "fp16" in precisions
    export_checkpoint(ckpt, ExportConfig(out=str(out), precision=precisions, verify=verify, **FAST))
    return out


def fp32_model() -> Path:
    return exported(("fp32", "fp16", "int8")) / "model.fp32.onnx"


def identity_onnx(
    path: Path,
    spec: ModelSpec | None,
    in_shape: list[object] | None = None,
    out_shape: list[object] | None = None,
    inputs: int = 1,
    block: int = 1,
) -> Path:
    """An ONNX graph that returns its (first) input, optionally with an edgegen spec; with
    ``block`` > 1 it goes through SpaceToDepth/DepthToSpace, so H and W must be multiples of it."""
    import onnx
    from onnx import TensorProto, helper

    c = spec.in_channels if spec else 3
    in_shape = in_shape or ["N", c, "H", "W"]
    out_shape = out_shape or in_shape
    ins = [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)]
    ins += [
        helper.make_tensor_value_info(f"extra{k}", TensorProto.FLOAT, in_shape)
        for k in range(1, inputs)
    ]
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)
    if block > 1:
        nodes = [
            helper.make_node("SpaceToDepth", ["input"], ["packed"], blocksize=block),
            helper.make_node("DepthToSpace", ["packed"], ["output"], blocksize=block, mode="DCR"),
        ]
    else:
        nodes = [helper.make_node("Identity", ["input"], ["output"])]
    graph = helper.make_graph(nodes, "id", ins, [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if spec is not None:
        onnx.helper.set_model_props(model, {METADATA_KEY: spec.to_json()})
    onnx.save(model, str(path))
    return path


def photo(index: int = 0) -> np.ndarray:
    """A real held-out photo (chelsea, rocket, coffee) as uint8 RGB."""
    from edgegen.evaluation.photos import bundled_paths
    from edgegen.runtime.images import read_image

    return read_image(bundled_paths("val")[index])


def noisy_crop(
    height: int, width: int, top: int = 100, left: int = 150, seed: int = 7
) -> np.ndarray:
    """A crop of a held-out photo (chelsea, never calibrated on) with sigma-25 noise, as the tiny
    denoisers expect: NCHW float32, odd sizes welcome."""
    from edgegen.evaluation.degrade import GaussianNoise
    from edgegen.evaluation.photos import bundled_paths, load_all

    photo = load_all(bundled_paths("val")[:1], 3).photos[0].as_float()
    clean = np.ascontiguousarray(photo[top : top + height, left : left + width])
    noisy = GaussianNoise(25.0)(clean, np.random.default_rng(seed))
    return np.ascontiguousarray(noisy.transpose(2, 0, 1)[None], dtype=np.float32)


def run_cpu(path: Path, x: np.ndarray) -> np.ndarray:
    """The model's output for ``x`` on a plain onnxruntime CPU session."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {"input": x})[0])


def damaged_conv_copy(src: Path, dst: Path, conv_index: int, seed: int) -> str:
    """Copy the ONNX ``src`` to ``dst`` with the weights of its ``conv_index``-th Conv (graph
    order) replaced by noise of three times their spread; returns that conv's output name."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    conv = [n for n in model.graph.node if n.op_type == "Conv"][conv_index]
    init = next(i for i in model.graph.initializer if i.name == conv.input[1])
    weights = numpy_helper.to_array(init)
    noise = np.random.default_rng(seed).normal(0.0, weights.std() * 3, weights.shape)
    init.CopyFrom(numpy_helper.from_array((weights + noise).astype(np.float32), init.name))
    onnx.save(model, str(dst))
    return str(conv.output[0])


def tamper(src, dst) -> None:
    """Copy a model and shift the bias of its last convolution (as an attacker or bad copy)."""
    import onnx
    from onnx import numpy_helper

    from edgegen.runtime.golden import golden_path

    model = onnx.load(str(src))
    conv = [n for n in model.graph.node if n.op_type == "Conv"][-1]
    name = conv.input[2]
    for init in model.graph.initializer:
        if init.name == name:
            arr = numpy_helper.to_array(init).copy() + np.float32(0.05)
            init.CopyFrom(numpy_helper.from_array(arr, name))
    onnx.save(model, str(dst))
    shutil.copy(golden_path(src), golden_path(dst))


def run_compare(reference: Path, variants: list[Path], devices=("cpu",), **options):  # type: ignore[no-untyped-def]
    """compare() as the CLI builds it: runners from files (a reference ONNX or checkpoint)."""
    from edgegen.evaluation.compare import check_devices, compare, onnx_reference, onnx_variants

    if reference.is_dir():
        from edgegen.train.checkpoint import load_runner

        ref = load_runner(reference)
    else:
        ref = onnx_reference(reference)
    return compare(ref, onnx_variants(variants, check_devices(list(devices)), ref.spec), **options)
