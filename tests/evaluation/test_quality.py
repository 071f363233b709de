"""Colour shift: per-channel mean errors, overall and on the dark regions, in 8-bit steps."""

import numpy as np
import pytest

from edgegen.evaluation.quality import colour_shift, mean_shift, worst_shift


def test_a_uniform_tint_is_its_size_in_lsb_everywhere():
    clean = np.full((64, 64, 3), 0.5, np.float32)
    clean[:32] = 0.1  # the top half is dark (luma 0.1 < 0.25)
    out = clean + np.array([3, 0, -2], np.float32) / 255
    shift = colour_shift(clean, out)
    np.testing.assert_allclose(shift.mean_lsb, [3, 0, -2], atol=1e-3)
    np.testing.assert_allclose(shift.dark_mean_lsb, [3, 0, -2], atol=1e-3)
    assert shift.overall == pytest.approx(3, abs=1e-3)
    assert shift.dark_share == 0.5


def test_a_shift_only_in_the_dark_shows_there_more_than_overall():
    clean = np.full((100, 100, 3), 0.8, np.float32)
    clean[:20] = 0.05
    out = clean.copy()
    out[:20, :, 2] += 10 / 255  # blue lifted in the dark band only
    shift = colour_shift(clean, out)
    assert shift.dark == pytest.approx(10, abs=1e-3)
    assert shift.overall == pytest.approx(2, abs=1e-3)  # a fifth of the photo


def test_no_dark_region_means_no_dark_measurement_and_worst_takes_the_maximum():
    clean = np.full((40, 40, 3), 0.9, np.float32)
    a = colour_shift(clean, clean + 1 / 255)
    assert a.dark_mean_lsb is None and a.dark == 0.0
    b = colour_shift(clean, clean - 2 / 255)
    worst = worst_shift([a, b])
    assert worst.overall == pytest.approx(2, abs=1e-3) and worst.dark == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        colour_shift(clean, clean[:20])


def test_a_blur_that_keeps_the_colours_is_no_dark_shift():
    # Fine dark stripes (0.02 and 0.30, mean luma 0.16: a dark region) above a bright half. A
    # 3-pixel box blur along the rows moves no colour: it lifts the darkest stripes by 31 LSB
    # and lowers their neighbours as much, and every 16x16 block keeps its mean.
    clean = np.full((64, 64, 3), 0.8, np.float32)
    clean[:32] = 0.02
    clean[:32, 1::2] = 0.30
    out = (clean + np.roll(clean, 1, axis=1) + np.roll(clean, -1, axis=1)) / 3
    lifted = (out[:32, ::2] - clean[:32, ::2]) * 255
    assert lifted.min() > 30  # what a pixel-by-pixel "dark" mask would have measured
    shift = colour_shift(clean, out)
    assert shift.dark_share == 0.5
    assert shift.dark < 1e-3
    # A real tint of the same region still shows, in full.
    tinted = out + np.array([0, 0, 2], np.float32) / 255
    assert colour_shift(clean, tinted).dark == pytest.approx(2, abs=1e-3)


def test_mean_over_noise_draws_keeps_the_bias_and_averages_the_noise_out():
    # A small dark region (4 blocks) with a +1 LSB bias under zero-mean noise: one draw's mean
    # error wanders around 1; the mean over many draws is the bias.
    rng = np.random.default_rng(0)
    clean = np.full((64, 64, 3), 0.6, np.float32)
    clean[:32, :32] = 0.1
    draws = []
    for _ in range(64):
        noise = rng.normal(0.0, 20.0 / 255, clean.shape).astype(np.float32)
        draws.append(colour_shift(clean, clean + 1 / 255 + noise))
    single = [d.dark_mean_lsb[0] for d in draws]  # type: ignore[index]
    assert max(abs(v - 1.0) for v in single) > 0.5  # one draw can be far from the bias
    mean = mean_shift(draws)
    assert mean.dark_mean_lsb is not None
    # one draw's mean over 1024 pixels has a deviation of 20 / 32 = 0.63 LSB, the mean of 64
    # draws 0.08: 0.25 is three of those
    np.testing.assert_allclose(mean.dark_mean_lsb, [1, 1, 1], atol=0.25)
    np.testing.assert_allclose(mean.mean_lsb, [1, 1, 1], atol=0.15)  # 4096 pixels: 0.04
    assert mean.dark_share == draws[0].dark_share
    with pytest.raises(ValueError, match="not of one photo"):
        mean_shift([draws[0], colour_shift(np.full((64, 64, 3), 0.6, np.float32), clean)])
