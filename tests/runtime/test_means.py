"""Mean matching (edgegen.runtime.means) on a real photo with file-like noise: the clipping
model against a Monte Carlo draw, the noise level it reads, and the colour shift it removes."""

from __future__ import annotations

import numpy as np
import pytest
from tinymodels import exported, fp32_model, photo

from edgegen.evaluation.quality import colour_shift
from edgegen.runtime import EdgegenError, Generator
from edgegen.runtime.generator import Cancelled
from edgegen.runtime.means import estimate_sigma, expected_clipped, match_means

RNG = np.random.default_rng(7)


def noisy_file(clean: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Gaussian noise of ``sigma`` (8-bit steps) as a file holds it: clipped, 8-bit."""
    rng = np.random.default_rng(seed)
    noisy = clean.astype(np.float64) + rng.normal(0.0, sigma, clean.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("level", [0.0, 10.0, 40.0, 128.0, 230.0, 255.0])
def test_expected_clipped_matches_a_monte_carlo_draw(level: float) -> None:
    sigma = 25.0
    draws = np.clip(level + RNG.normal(0.0, sigma, 400_000), 0, 255)
    got = expected_clipped(np.array([level / 255]), sigma / 255)[0] * 255
    assert got == pytest.approx(draws.mean(), abs=0.1)


@pytest.mark.parametrize("sigma", [10.0, 25.0, 50.0])
def test_noise_level_is_read_from_the_residual(sigma: float) -> None:
    clean = photo(0)  # chelsea: fur, dark and bright areas
    noisy = noisy_file(clean, sigma)
    got = estimate_sigma(noisy, clean.astype(np.float32) / 255) * 255
    assert got == pytest.approx(sigma, abs=0.04 * sigma)


def test_a_dark_region_lift_is_removed() -> None:
    clean = photo(2)  # coffee: a dark background beside a white cup
    noisy = noisy_file(clean, 25.0, seed=1)
    truth = clean.astype(np.float32) / 255
    # A "denoiser" that gets every pixel right but lifts the dark areas by 3 LSB, as a
    # network that under-corrects clipped noise does.
    dark = (truth.mean(axis=2, keepdims=True) < 0.25).astype(np.float32)
    lifted = np.clip(truth + dark * (3 / 255), 0, 1)
    before = colour_shift(truth, lifted)
    after = colour_shift(truth, match_means(noisy, lifted))
    assert before.dark is not None and before.dark > 2.5
    assert after.dark is not None and after.dark < 0.5
    assert after.overall < 0.3


def test_a_right_output_stays_right() -> None:
    clean = photo(1)
    noisy = noisy_file(clean, 15.0, seed=2)
    truth = clean.astype(np.float32) / 255
    matched = match_means(noisy, truth)
    shift = colour_shift(truth, matched)
    assert shift.overall < 0.2 and (shift.dark is None or shift.dark < 0.3)
    assert np.abs(matched - truth).max() * 255 < 3.0  # only the low frequencies move, a little


def test_unclipped_float_noise_keeps_the_blurred_means() -> None:
    truth = photo(1)[:96, :128].astype(np.float32) / 255
    noisy = truth + np.random.default_rng(3).normal(0, 0.1, truth.shape).astype(np.float32)
    assert noisy.min() < 0  # not clipped: matched without the clipping term
    shifted = np.clip(truth + 0.02, 0, 1)  # a 5 LSB colour shift
    matched = match_means(noisy, shifted, sigma=0.1)
    assert abs(float((matched - truth).mean())) * 255 < 0.5
    assert shifted is not matched and float((shifted - truth).mean()) * 255 > 4  # a copy


def test_match_means_stops_when_its_check_raises() -> None:
    clean = photo(0)

    def stop() -> None:
        raise Cancelled("stopped")

    with pytest.raises(Cancelled):
        match_means(clean, clean.astype(np.float32) / 255, check=stop)


def test_generator_matches_means_of_a_gaussian_denoiser_only() -> None:
    img = noisy_file(photo(0)[:64, :80], 25.0)
    gen = Generator(fp32_model(), device="cpu")
    raw = Generator(fp32_model(), device="cpu", match_means=False)
    unit = img.astype(np.float32) / 255
    expected = match_means(img, raw(unit))
    np.testing.assert_allclose(gen(unit), expected, atol=1e-6)
    np.testing.assert_array_equal(gen(img), np.rint(expected * 255).astype(np.uint8))
    sr = exported(("fp32",), scale=2) / "model.fp32.onnx"
    assert not Generator(sr, device="cpu").match_means
    with pytest.raises(EdgegenError, match="match_means needs a model whose output matches"):
        Generator(sr, device="cpu", match_means=True)


@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 5, 3), (3, 3, 1), (17, 300, 3)])
def test_small_and_odd_images_keep_their_shape_and_means(shape: tuple[int, int, int]) -> None:
    noisy = np.random.default_rng(5).integers(0, 256, shape).astype(np.uint8)
    shifted = np.clip(noisy.astype(np.float32) / 255 + 0.02, 0, 1)
    matched = match_means(noisy, shifted)
    assert matched.shape == shape and matched.dtype == np.float32
    assert np.isfinite(matched).all() and matched.min() >= 0 and matched.max() <= 1
    # Noise that never clips (sigma ~0 read from an output that is the input plus a constant):
    # the 5 LSB shift is taken back out.
    assert abs(float((matched - noisy / 255).mean())) * 255 < 1.0
