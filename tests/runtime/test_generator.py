"""Generator on real onnxruntime sessions: image kinds, sizes, scale, padding, errors, providers,
tiling and concurrency."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from tinymodels import exported, fp32_model, identity_onnx, photo

from edgegen.runtime import EdgegenError, Generator, ModelSpec
from edgegen.runtime.tiling import axis_weights, default_margin, default_overlap

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
    gen = Generator(fp32_model(), device="cpu")
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
    expected = [gen(im) for im in images]
    results: dict[tuple[int, int], np.ndarray] = {}
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for k in range(50):
                results[(t, k)] = gen(images[(t + k) % 8])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert len(results) == 400
    for (t, k), out in results.items():
        np.testing.assert_array_equal(out, expected[(t + k) % 8])


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
