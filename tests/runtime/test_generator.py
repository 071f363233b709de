"""Generator on real onnxruntime sessions: image kinds, sizes, scale, padding, errors, providers,
tiling and concurrency."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from concurrency import assert_threads_match_sequential
from tinymodels import exported, fp32_model, identity_onnx, photo

from edgegen.runtime import EdgegenError, Generator, ModelSpec
from edgegen.runtime.spec import METADATA_KEY
from edgegen.runtime.tiling import axis_weights, default_margin, default_overlap, tile_spans

DENOISE = ModelSpec(task="denoise")
RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def identity(tmp_path_factory) -> Generator:
    path = identity_onnx(tmp_path_factory.mktemp("id") / "id.onnx", DENOISE)
    return Generator(path, device="cpu")


# -- image kinds: an identity model gives every pixel back exactly ---------------------------


@pytest.mark.parametrize("shape", [(37, 53, 3), (1, 1, 3), (64, 48, 3)])
def test_uint8_rgb_round_trips_exactly(identity, shape):
    img = RNG.integers(0, 256, shape, dtype=np.uint8)
    out = identity(img)
    assert out.dtype == np.uint8 and out.shape == shape
    np.testing.assert_array_equal(out, img)


def test_gray_hw_and_hw1_keep_their_layout(identity):
    gray = RNG.integers(0, 256, (31, 17), dtype=np.uint8)
    np.testing.assert_array_equal(identity(gray), gray)
    np.testing.assert_array_equal(identity(gray[:, :, None]), gray[:, :, None])


def test_rgba_alpha_is_carried_through(identity):
    img = RNG.integers(0, 256, (20, 30, 4), dtype=np.uint8)
    np.testing.assert_array_equal(identity(img), img)


def test_float_and_uint16_inputs(identity):
    f64 = RNG.random((9, 11, 3))
    out = identity(f64)
    assert out.dtype == np.float32 and out.shape == f64.shape
    np.testing.assert_allclose(out, f64, atol=1e-6)
    f32 = RNG.random((9, 11), dtype=np.float32)
    assert identity(f32).shape == (9, 11)
    u16 = RNG.integers(0, 65536, (10, 12, 3), dtype=np.uint16)
    out16 = identity(u16)
    assert out16.dtype == np.uint16
    np.testing.assert_array_equal(out16, u16)


def test_gray_model_refuses_rgb(tmp_path):
    spec = ModelSpec(task="denoise", in_channels=1, out_channels=1, color_order="GRAY")
    gen = Generator(identity_onnx(tmp_path / "g.onnx", spec), device="cpu")
    gray = RNG.integers(0, 256, (8, 8), dtype=np.uint8)
    np.testing.assert_array_equal(gen(gray), gray)
    with pytest.raises(EdgegenError, match="gray"):
        gen(np.zeros((8, 8, 3), np.uint8))


def test_pad_multiple_pads_and_crops_back(tmp_path):
    spec = ModelSpec(task="denoise", pad_multiple=8)
    gen = Generator(identity_onnx(tmp_path / "p.onnx", spec, block=8), device="cpu")
    img = RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    np.testing.assert_array_equal(gen(img), img)
    tiny = RNG.integers(0, 256, (3, 2, 3), dtype=np.uint8)  # smaller than the padding
    np.testing.assert_array_equal(gen(tiny), tiny)
    with pytest.raises(Exception, match="multiple"):  # the model really needs the padding
        gen.infer(np.zeros((1, 3, 37, 53), np.float32))


# -- real exported models --------------------------------------------------------------------


def test_real_denoiser_on_odd_sizes_gray_and_rgba():
    assert Generator(fp32_model(), device="cpu").match_means  # a Gaussian denoiser: on
    gen = Generator(fp32_model(), device="cpu", match_means=False)  # the network's own output
    assert gen.providers == ["CPUExecutionProvider"]
    assert gen.spec.task == "denoise"
    img = photo(0)[:37, :53]
    out = gen(img)
    assert out.shape == img.shape and out.dtype == np.uint8
    nchw = img.transpose(2, 0, 1)[None].astype(np.float32) / 255
    raw = gen.infer(nchw)
    expected = np.rint(np.clip(raw[0].transpose(1, 2, 0), 0, 1) * 255)
    np.testing.assert_array_equal(out, expected)
    gray = img.mean(axis=2).astype(np.uint8)  # repeated to RGB, averaged back
    assert gen(gray).shape == gray.shape
    rgba = np.dstack([img, np.full(img.shape[:2], 77, np.uint8)])
    out4 = gen(rgba)
    assert out4.shape == rgba.shape and (out4[:, :, 3] == 77).all()
    np.testing.assert_array_equal(out4[:, :, :3], out)


def test_sr_scale_2_output_size_alpha_and_batch():
    gen = Generator(exported(("fp32",), scale=2) / "model.fp32.onnx", device="cpu")
    assert gen.spec.scale == 2
    img = photo(1)[:31, :45]
    out = gen(img)
    assert out.shape == (62, 90, 3)
    alpha = np.zeros((31, 45), np.uint8)
    alpha[:, 20:] = 255
    out4 = gen(np.dstack([img, alpha]))
    assert out4.shape == (62, 90, 4)
    assert (out4[:, :38, 3] == 0).all() and (out4[:, 42:, 3] == 255).all()
    batch = gen.run_batch([img, img[::-1].copy(), img[:20]])  # two same-size, one not
    assert [b.shape for b in batch] == [(62, 90, 3), (62, 90, 3), (40, 90, 3)]
    np.testing.assert_array_equal(batch[0], out)
    np.testing.assert_array_equal(batch[1], gen(img[::-1].copy()))


# -- bad input ----------------------------------------------------------------------------------


def test_non_onnx_file_is_one_line(tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_text("this is not a model")
    with pytest.raises(EdgegenError) as err:
        Generator(bad, device="cpu")
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(EdgegenError, match="no such file"):
        Generator(tmp_path / "missing.onnx")


def test_onnx_of_another_kind(tmp_path):
    cases = {
        "rank": identity_onnx(tmp_path / "r.onnx", DENOISE, in_shape=["N", 3]),
        "two": identity_onnx(tmp_path / "t.onnx", DENOISE, inputs=2),
        "chan": identity_onnx(tmp_path / "c.onnx", DENOISE, in_shape=["N", 5, "H", "W"]),
    }
    for name, path in cases.items():
        with pytest.raises(EdgegenError, match="not an edgegen image model") as err:
            Generator(path, device="cpu")
        assert "\n" not in str(err.value), name


def test_onnx_without_spec_is_refused_unless_one_is_passed(tmp_path):
    path = identity_onnx(tmp_path / "nospec.onnx", None)
    with pytest.raises(EdgegenError, match="no edgegen spec") as err:
        Generator(path, device="cpu")
    assert str(path) in str(err.value)
    gen = Generator(path, device="cpu", spec=DENOISE)
    img = RNG.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(gen(img), img)


@pytest.mark.parametrize(
    ("shape", "dtype", "needle"),
    [
        ((8, 8, 2), np.uint8, "channels, got 2"),
        ((8, 8, 5), np.uint8, "channels, got 5"),
        ((0, 8, 3), np.uint8, "zero-size"),
        ((8, 0), np.uint8, "zero-size"),
        ((8, 8, 3), np.int32, "uint8, uint16"),
        ((2, 8, 8, 3), np.uint8, "HW or HWC"),
    ],
)
def test_bad_images(identity, shape, dtype, needle):
    with pytest.raises(EdgegenError, match=needle):
        identity(np.zeros(shape, dtype))


@pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA is available here"
)
def test_cuda_when_absent_names_the_cause(identity):
    for device in ("cuda", "tensorrt"):
        with pytest.raises(EdgegenError) as err:
            Generator(identity.path, device=device)
        message = str(err.value)
        assert "not available in this onnxruntime" in message or "both onnxruntime" in message
        assert "edgegen[gpu]" in message
    with pytest.raises(EdgegenError, match="CUDAExecutionProvider"):
        Generator(identity.path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(EdgegenError, match="unknown device"):
        Generator(identity.path, device="tpu")


def test_auto_and_explicit_providers(identity, caplog):
    with caplog.at_level("INFO", logger="edgegen.runtime"):
        gen = Generator(identity.path)
    assert "device auto" in caplog.text
    assert gen.providers[-1] == "CPUExecutionProvider"
    assert Generator(identity.path, providers=["CPUExecutionProvider"]).providers == [
        "CPUExecutionProvider"
    ]


# -- tiling ------------------------------------------------------------------------------------


def test_tile_weights_sum_to_one():
    for length, tile, overlap, scale in [(300, 128, 16, 1), (451, 100, 24, 2), (64, 64, 16, 1)]:
        total = np.zeros(length * scale)
        margin = default_margin(11, overlap)
        for start, size, w in axis_weights(length, tile, overlap, margin, scale):
            total[start : start + size] += w
        np.testing.assert_allclose(total, 1.0, atol=1e-6)
    assert default_overlap(11, 1) == 16 and default_overlap(21, 8) == 24


@pytest.mark.parametrize("index", [0, 2])
def test_tiled_output_matches_whole_image_on_real_photos(index):
    path = fp32_model()
    img = photo(index)
    whole = Generator(path, device="cpu", tile=0)(img).astype(int)
    tiled_gen = Generator(path, device="cpu", tile=96)  # default overlap
    assert tiled_gen.overlap == default_overlap(tiled_gen.spec.receptive_field)
    tiled = tiled_gen(img).astype(int)
    assert np.abs(tiled - whole).max() <= 1
    # the check can fail: tiles without overlap leave visible seams
    seams = Generator(path, device="cpu", tile=96, overlap=0)(img).astype(int)
    assert np.abs(seams - whole).max() > 1


def test_tiled_sr_and_float_output():
    gen_whole = Generator(exported(("fp32",), scale=2) / "model.fp32.onnx", device="cpu", tile=0)
    gen_tiled = Generator(gen_whole.path, device="cpu", tile=64)
    img = photo(1)[:150, :170].astype(np.float32) / 255
    a, b = gen_whole(img), gen_tiled(img)
    assert a.shape == b.shape == (300, 340, 3)
    assert np.abs(a - b).max() * 255 <= 1


def test_auto_tiling_only_over_a_megapixel(identity):
    assert identity._tile_for(1024, 1024) == 0
    assert identity._tile_for(1025, 1024) == 512


# -- concurrency -------------------------------------------------------------------------------


def test_eight_threads_match_sequential_calls():
    gen = Generator(fp32_model(), device="cpu", threads=1)
    images = [photo(0)[i : i + 24, i : i + 32] for i in range(8)]
    assert_threads_match_sequential(gen, images, threads=8, calls=50)


def test_generator_is_importable_lazily():
    import edgegen.runtime as rt

    assert rt.Generator is Generator
    assert Path(rt.__file__).name == "__init__.py"


def test_infer_refuses_a_batch_of_the_wrong_shape():
    gen = Generator(fp32_model(), device="cpu")
    with pytest.raises(EdgegenError, match=r"\(N, 3, H, W\); got \(3, 8, 8\)"):
        gen.infer(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(EdgegenError, match="got \\(1, 4, 8, 8\\)"):
        gen.infer(np.zeros((1, 4, 8, 8), np.float32))


# -- session options and IO binding (runtime/session*.py) -------------------------------------


def test_io_binding_on_cpu_matches_plain_runs_and_reuses_buffers():
    plain = Generator(fp32_model(), device="cpu")
    bound = Generator(fp32_model(), device="cpu", io_binding=True)
    assert plain.options.io_binding is False and bound.options.io_binding is True
    a, b = photo(0)[:40, :56], photo(1)[:40, :56]
    first = bound(a)
    np.testing.assert_array_equal(first, plain(a))
    assert bound._bindings is not None and bound._bindings.shapes == [(1, 3, 40, 56)]
    runner = bound.bound((1, 3, 40, 56))
    second = bound(b)  # the same buffers again: the first result must not change under it
    assert bound.bound((1, 3, 40, 56)) is runner
    np.testing.assert_array_equal(first, plain(a))
    np.testing.assert_array_equal(second, plain(b))
    bound(a[:24])  # a new shape gets its own buffers
    assert len(bound._bindings.shapes) == 2


def test_bound_buffers_serve_an_embedder_directly():
    gen = Generator(fp32_model(), device="cpu", io_binding=True)
    x = (photo(2)[:32, :48].transpose(2, 0, 1)[None] / 255).astype(np.float32)
    run = gen.bound(x.shape)
    run.input.update_inplace(x)
    run.run()
    np.testing.assert_allclose(run.output.numpy(), gen.infer(x), atol=1e-6)
    with pytest.raises(EdgegenError, match="io_binding"):
        Generator(fp32_model(), device="cpu").bound(x.shape)


def test_warmup_makes_the_shape_ready():
    gen = Generator(fp32_model(), device="cpu", io_binding=True)
    gen.warmup(30, 50, batch=2)
    assert gen._bindings is not None and gen._bindings.shapes == [(2, 3, 30, 50)]


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"cuda_graph": True}, "cuda_graph cannot apply on the CPU"),
        ({"prefer_nhwc": True}, "prefer_nhwc cannot apply on the CPU"),
        ({"cudnn_conv_algo_search": "HEURISTIC"}, "cudnn_conv_algo_search cannot apply"),
        ({"tf32": True}, "tf32 cannot apply on the CPU"),
        ({"fuse_conv_bias": True}, "fuse_conv_bias cannot apply on the CPU"),
        ({"trt_fp16": True}, "TensorRT options need device tensorrt"),
        ({"trt_engine_cache": "cache"}, "trt_engine_cache cannot apply"),
        ({"cudnn_conv_algo_search": "fastest"}, "EXHAUSTIVE, HEURISTIC, DEFAULT"),
        ({"cuda_graph": True, "io_binding": False}, "cuda_graph needs io_binding"),
        ({"threads": 0}, "threads must be >= 1"),
    ],
)
def test_gpu_options_on_the_cpu_are_refused_in_one_line(identity, options, needle):
    with pytest.raises(EdgegenError, match=needle) as err:
        Generator(identity.path, device="cpu", **options)
    assert "\n" not in str(err.value)


def test_auto_logs_gpu_options_it_cannot_apply(identity, caplog):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here: auto would apply the options")
    with caplog.at_level("INFO", logger="edgegen.runtime"):
        gen = Generator(identity.path, cuda_graph=True, prefer_nhwc=True)
    assert gen.providers == ["CPUExecutionProvider"]
    assert "not applied there: prefer_nhwc, cuda_graph" in caplog.text
    # gen.options says what applies on the provider that runs
    assert not (gen.options.cuda_graph or gen.options.prefer_nhwc or gen.options.io_binding)
    img = photo(0)[:20, :30]
    np.testing.assert_array_equal(gen(img), Generator(identity.path, device="cpu")(img))


def test_fp16_io_model_is_fed_float16_directly(tmp_path):
    import onnx

    from edgegen.export.fp16 import convert_fp16

    fp32 = fp32_model()
    half = tmp_path / "model.fp16io.onnx"
    onnx.save(convert_fp16(onnx.load(str(fp32)), keep_io_types=False), str(half))
    ref = Generator(fp32, device="cpu", match_means=False)  # the networks' outputs compared
    for io_binding in (False, True):
        gen = Generator(half, device="cpu", io_binding=io_binding, match_means=False)
        assert gen._input_dtype is np.float16 and gen._output_dtype is np.float16
        img = photo(0)[:45, :61]
        assert np.abs(gen(img).astype(int) - ref(img).astype(int)).max() <= 1
        raw = gen.infer(img.transpose(2, 0, 1)[None] / 255.0)
        assert raw.dtype == np.float32 and raw.shape == (1, 3, 45, 61)


@pytest.mark.parametrize("io_binding", [False, True])
def test_cpu_memory_arena_off_gives_the_same_output(io_binding):
    img = photo(1)[:64, :80]
    on = Generator(fp32_model(), device="cpu")(img)
    off = Generator(fp32_model(), device="cpu", cpu_mem_arena=False, io_binding=io_binding)
    np.testing.assert_array_equal(off(img), on)


def test_eight_threads_with_io_binding_match_sequential_calls():
    gen = Generator(fp32_model(), device="cpu", threads=1, io_binding=True)
    images = [photo(0)[i : i + 24, i : i + 32] for i in range(4)] + [photo(1)[:20, :28]] * 4
    assert_threads_match_sequential(gen, images, threads=8, calls=50)


# -- providers that are listed but cannot load ---------------------------------------------------

NVINFER = "libnvinfer.so.10: cannot open shared object file: No such file or directory"


@pytest.fixture
def trt_listed_without_libraries(monkeypatch):
    """An onnxruntime-gpu as on the H100 test machine: TensorRT listed, its libraries absent."""
    from edgegen.runtime import session

    listed = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(session, "available_providers", lambda: listed)
    monkeypatch.setattr("edgegen.runtime.providers.available_providers", lambda: listed)
    monkeypatch.setattr(session, "preload_gpu_libraries", lambda: None)
    monkeypatch.setattr(
        session, "provider_library_error", lambda p: NVINFER if "Tensorrt" in p else None
    )


def test_tensorrt_without_its_libraries_names_them(identity, trt_listed_without_libraries):
    with pytest.raises(EdgegenError) as err:
        Generator(identity.path, device="tensorrt", trt_fp16=True)
    message = str(err.value)
    assert "TensorrtExecutionProvider cannot load: missing libnvinfer.so.10" in message
    assert "LD_LIBRARY_PATH" in message and "\n" not in message


# onnxruntime warns when asked for a provider it lacks: that is the fallback under test.
@pytest.mark.filterwarnings("ignore:Specified provider:UserWarning")
def test_auto_skips_providers_that_do_not_load_and_says_why(
    identity, trt_listed_without_libraries, caplog
):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA really loads here")
    # TensorRT: its library is missing. CUDA: this onnxruntime cannot run it, so its session
    # falls back to the CPU, as onnxruntime does when CUDA's libraries are absent.
    with caplog.at_level("INFO", logger="edgegen.runtime"):
        gen = Generator(identity.path)
    assert gen.providers == ["CPUExecutionProvider"]
    assert "tensorrt: missing libnvinfer.so.10" in caplog.text
    assert "cuda: the session fell back to CPUExecutionProvider" in caplog.text
    with pytest.raises(EdgegenError, match="CUDAExecutionProvider failed to load"):
        Generator(identity.path, device="cuda")


def test_library_probe_reports_the_loader_message(tmp_path):
    from edgegen.runtime.gpu_libraries import library_error, missing_libraries

    missing = library_error(tmp_path / "libnvinfer.so.10")
    assert missing is not None and "cannot open shared object file" in missing
    assert missing_libraries(missing) == "missing libnvinfer.so.10"
    fake = tmp_path / "libfake.so"  # a failure other than a missing file: the session decides
    fake.write_bytes(b"not a shared object")
    assert library_error(fake) is None
    shared = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_shared.so"
    assert library_error(shared) is None
    assert missing_libraries(NVINFER) == "missing libnvinfer.so.10"
    cudnn = "libcudnn.so.9: cannot open shared object file"
    assert missing_libraries(cudnn) == "missing libcudnn.so.9"


def block_mixing_onnx(path: Path, block: int = 4) -> Path:
    """A pad-``block`` network: SpaceToDepth, a 1x1 convolution that mixes the positions inside
    each block, DepthToSpace. Its output depends on where the blocks start, so a crop shifted by
    less than ``block`` pixels computes something else (by ``block``: the same)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    c = 3 * block * block
    rng = np.random.default_rng(3)
    weight = (np.eye(c) * 0.5 + rng.normal(0, 0.5 / c, (c, c))).astype(np.float32)
    nodes = [
        helper.make_node("SpaceToDepth", ["input"], ["packed"], blocksize=block),
        helper.make_node("Conv", ["packed", "w"], ["mixed"]),
        helper.make_node("DepthToSpace", ["mixed"], ["output"], blocksize=block, mode="DCR"),
    ]
    graph = helper.make_graph(
        nodes,
        "blocks",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [numpy_helper.from_array(weight.reshape(c, c, 1, 1), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    spec = ModelSpec(task="denoise", pad_multiple=block, receptive_field=block)
    helper.set_model_props(model, {METADATA_KEY: spec.to_json()})
    onnx.save(model, str(path))
    return path


def test_tile_starts_are_aligned_to_the_pad_multiple(tmp_path: Path) -> None:
    path = block_mixing_onnx(tmp_path / "blocks.onnx")
    img = photo(0)[:50, :71]  # neither side a multiple of 4
    whole = Generator(path, device="cpu", tile=0)(img).astype(int)
    shifted = Generator(path, device="cpu", tile=0)(img[:, 3:]).astype(int)
    assert np.abs(shifted - whole[:, 3:]).max() > 1  # the check can fail: blocks matter
    for tile, overlap in ((24, None), (20, 6), (16, 4)):
        gen = Generator(path, device="cpu", tile=tile, overlap=overlap)
        assert np.abs(gen(img).astype(int) - whole).max() <= 1, (tile, overlap)
    for length, tile, overlap, align in ((71, 24, 16, 4), (50, 20, 8, 4), (37, 16, 4, 2)):
        spans = tile_spans(length, tile, overlap, align)
        assert all(s % align == 0 for s, _ in spans), spans
        assert spans[-1][0] + spans[-1][1] == length
