"""The runtime's CUDA path on a real GPU: IO binding, prefer_nhwc, CUDA graphs per shape, fp16
models fed float16, cuDNN's search setting, TensorRT's options, device="auto".

Every test is marked ``gpu`` and skipped, with the reason, where the CUDA provider does not load
(CI, the CPU-only dev machine). The models are small conv nets built with onnx.helper, so this
file needs neither the export tools (onnxslim, onnxconverter-common) nor torch: it runs as is on
the GPU machine through ``python3 benchmarks/gpu.py --tests``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from concurrency import assert_threads_match_sequential

from edgegen.runtime import EdgegenError, Generator, ModelSpec
from edgegen.runtime.spec import METADATA_KEY

pytestmark = pytest.mark.gpu

CUDA = "CUDAExecutionProvider"
TRT = "TensorrtExecutionProvider"
RNG = np.random.default_rng(0)


def conv_net(path: Path, half: bool) -> Path:
    """y = x + conv(relu(conv(x))): 3 -> 8 -> 3 channels, 3x3; float16 throughout (I/O too)
    when ``half``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    dtype = np.float16 if half else np.float32
    elem = TensorProto.FLOAT16 if half else TensorProto.FLOAT
    rng = np.random.default_rng(1)
    weights = {
        "w1": (rng.standard_normal((8, 3, 3, 3)) * 0.2).astype(dtype),
        "b1": (rng.standard_normal(8) * 0.05).astype(dtype),
        "w2": (rng.standard_normal((3, 8, 3, 3)) * 0.05).astype(dtype),
        "b2": np.zeros(3, dtype),
    }
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["h"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h"], ["a"]),
        helper.make_node("Conv", ["a", "w2", "b2"], ["r"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["input", "r"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "conv",
        [helper.make_tensor_value_info("input", elem, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("output", elem, ["N", 3, "H", "W"])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    spec = ModelSpec(task="denoise", receptive_field=5, precision="fp16" if half else "fp32")
    helper.set_model_props(model, {METADATA_KEY: spec.to_json()})
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gpu-models")
    paths = {
        "fp32": conv_net(root / "conv.fp32.onnx", half=False),
        "fp16": conv_net(root / "conv.fp16.onnx", half=True),
    }
    try:
        Generator(paths["fp32"], device="cuda", tile=0)
    except EdgegenError as exc:
        pytest.skip(f"the CUDA provider does not load here: {exc}")
    return paths


def image(h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_cuda_defaults_and_agreement_with_the_cpu(models):
    gen = Generator(models["fp32"], device="cuda")
    assert gen.providers[0] == CUDA
    # an fp32 model computes in fp32, in NCHW (12-20% faster than NHWC for exact fp32)
    assert gen.options.io_binding and not gen.options.prefer_nhwc and not gen.options.cuda_graph
    assert gen._session.get_provider_options()[CUDA]["prefer_nhwc"] == "0"
    half = Generator(models["fp16"], device="cuda")
    assert half._session.get_provider_options()[CUDA]["prefer_nhwc"] == "1"
    cpu = Generator(models["fp32"], device="cpu")
    for h, w in ((37, 53), (128, 96), (37, 53)):
        img = image(h, w)
        assert np.abs(gen(img).astype(int) - cpu(img).astype(int)).max() <= 1
    assert gen._bindings is not None
    assert sorted(gen._bindings.shapes) == [(1, 3, 37, 53), (1, 3, 128, 96)]


def test_cuda_graph_per_shape_matches_plain_cuda(models, monkeypatch):
    from edgegen.runtime import io_binding

    plain = Generator(models["fp32"], device="cuda", tile=0)
    graphed = Generator(models["fp32"], device="cuda", tile=0, cuda_graph=True)
    assert graphed._session.get_provider_options()[CUDA]["enable_cuda_graph"] == "1"
    a, b = image(64, 80), image(48, 48)
    first = graphed(a)
    for img in (a, b, a, b, a):  # graph ids 1 and 2, replayed in turn
        # two sessions may pick different cuDNN algorithms: equal up to rounding
        assert np.abs(graphed(img).astype(int) - plain(img).astype(int)).max() <= 1
    np.testing.assert_array_equal(graphed(a), first)  # a replay gives the captured result
    assert graphed._bindings is not None and len(graphed._bindings.shapes) == 2
    monkeypatch.setattr(io_binding, "MAX_GRAPHS", 2)
    with pytest.raises(EdgegenError, match="cuda_graph is for fixed shapes"):
        graphed(image(32, 32))


def test_fp16_model_is_fed_float16_on_the_gpu(models):
    from edgegen.runtime.metrics import psnr

    half = Generator(models["fp16"], device="cuda", cuda_graph=True)
    full = Generator(models["fp32"], device="cuda")
    assert half._input_dtype is np.float16
    x = RNG.random((1, 3, 96, 128), dtype=np.float32)
    assert psnr(full.infer(x), half.infer(x)) >= 60
    assert half.infer(x).dtype == np.float32


def test_bound_buffers_live_on_the_gpu(models):
    gen = Generator(models["fp32"], device="cuda", cuda_graph=True)
    gen.warmup(64, 64)  # allocation, cuDNN search and graph capture happen here
    run = gen.bound((1, 3, 64, 64))
    assert run.input.device_name().lower() == "cuda" and run.graph_id == 1
    x = RNG.random((1, 3, 64, 64), dtype=np.float32)
    run.input.update_inplace(x)
    run.run()
    expected = Generator(models["fp32"], device="cpu").infer(x)
    np.testing.assert_allclose(run.output.numpy(), expected, atol=1e-4)  # fp32: TF32 is off


def test_tf32_and_bias_fusion_are_asked_for_and_stay_close(models):
    exact = Generator(models["fp32"], device="cuda")  # its spec says fp32: no TF32, no fusion
    options = exact._session.get_provider_options()[CUDA]
    assert options["use_tf32"] == "0" and options["fuse_conv_bias"] == "0"  # onnxruntime's: 1, 0
    assert exact.options.tf32 is False
    fast = Generator(models["fp32"], device="cuda", tf32=True, fuse_conv_bias=True)
    options = fast._session.get_provider_options()[CUDA]
    assert options["use_tf32"] == "1" and options["fuse_conv_bias"] == "1"
    x = RNG.random((1, 3, 64, 96), dtype=np.float32)
    cpu = Generator(models["fp32"], device="cpu").infer(x)
    np.testing.assert_allclose(exact.infer(x), cpu, atol=1e-4)
    np.testing.assert_allclose(fast.infer(x), cpu, atol=5e-3)  # TF32: 10-bit mantissa
    half = Generator(models["fp16"], device="cuda", cuda_graph=True)  # the defaults
    # onnxruntime's use_tf32=0 took fp16 convolutions off the tensor cores (7x slower)
    options = half._session.get_provider_options()[CUDA]
    assert options["use_tf32"] == "1" and options["fuse_conv_bias"] == "1"
    from edgegen.runtime.metrics import psnr

    assert psnr(cpu, half.infer(x)) >= 60


def test_cudnn_search_setting_reaches_the_provider(models):
    gen = Generator(models["fp32"], device="cuda", cudnn_conv_algo_search="HEURISTIC")
    assert gen._session.get_provider_options()[CUDA]["cudnn_conv_algo_search"] == "HEURISTIC"
    off = Generator(models["fp32"], device="cuda", prefer_nhwc=False, io_binding=False)
    assert off._session.get_provider_options()[CUDA]["prefer_nhwc"] == "0"
    assert off._bindings is None
    img = image(40, 40)
    np.testing.assert_array_equal(gen(img), gen(img))


def test_tensorrt_runs_or_names_its_missing_libraries(models, tmp_path):
    import onnxruntime as ort

    if TRT not in ort.get_available_providers():
        pytest.skip("this onnxruntime build has no TensorRT provider")
    try:
        gen = Generator(
            models["fp32"], device="tensorrt", trt_fp16=True, trt_engine_cache=tmp_path / "trt"
        )
    except EdgegenError as exc:
        message = str(exc)
        assert "TensorrtExecutionProvider cannot load: missing lib" in message, message
        assert "libnvinfer" in message
        return
    assert gen.providers[0] == TRT
    options = gen._session.get_provider_options()[TRT]
    on = ("1", "True", "true")
    assert options["trt_fp16_enable"] in on and options["trt_engine_cache_enable"] in on
    img = image(64, 64)
    assert gen(img).shape == img.shape


def test_auto_takes_the_best_provider_that_loads(models, caplog):
    with caplog.at_level("INFO", logger="edgegen.runtime"):
        gen = Generator(models["fp32"])
    assert gen.providers[0] in (TRT, CUDA)
    assert "device auto: using" in caplog.text
    if gen.providers[0] == CUDA and "tensorrt" in caplog.text:
        assert "skipped tensorrt" in caplog.text


def test_threads_share_one_cuda_generator(models):
    gen = Generator(models["fp32"], device="cuda")
    images = [image(40, 56), image(40, 56), image(24, 24), image(64, 32)]
    assert_threads_match_sequential(gen, images, threads=6, calls=25)
