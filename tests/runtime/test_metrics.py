import math

import numpy as np
import pytest

from edgegen.runtime.metrics import PSNR_CAP, error_stats, limit_failures, psnr


def test_error_stats_by_hand():
    ref = np.zeros((1, 1, 2, 2), np.float32)
    out = ref.copy()
    out[0, 0, 0, 0] = 2 / 255  # one value of four off by 2 LSB
    stats = error_stats([out], [ref])
    assert stats.max_lsb == pytest.approx(2.0)
    assert stats.pct_over_1lsb == pytest.approx(25.0)
    assert stats.psnr == pytest.approx(10 * math.log10(1 / ((2 / 255) ** 2 / 4)), rel=1e-6)


def test_pooling_identity_and_cap():
    a = np.full((3, 4), 0.5, np.float32)
    stats = error_stats([a, a], [a, a + 1 / 255 * 0.5])
    assert stats.pct_over_1lsb == 0.0 and stats.max_lsb == pytest.approx(0.5, rel=1e-4)
    assert error_stats([a], [a]).psnr == PSNR_CAP
    assert psnr(a, a) == PSNR_CAP
    assert psnr(np.zeros(4), np.full(4, 0.1)) == pytest.approx(20.0)


def test_limit_failures_name_each_broken_limit():
    stats = error_stats([np.full(4, 3 / 255)], [np.zeros(4)])
    messages = limit_failures("fp16 at 37x53", stats, max_lsb=2, max_pct_over_1lsb=50, min_psnr=60)
    assert len(messages) == 3
    assert messages[0].startswith("fp16 at 37x53: max error 3.0000 LSB > 2")
    assert limit_failures("x", stats) == []
    assert limit_failures("x", stats, max_lsb=3.5, min_psnr=30) == []
