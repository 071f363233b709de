"""Mean matching: keep a denoised photo's local colour means those of its noisy input.

Zero-mean noise leaves a region's mean where it was, so a denoiser that shifts a region's colour
has made an error the input itself can show. Where the noise is clipped (8-bit files hold
[0, 255]) it is not zero-mean: dark pixels are lifted, near-white ones pulled down. For Gaussian
noise of level sigma the lift is known in closed form (Foi, "Clipped noisy images:
heteroskedastic modeling and practical denoising", 2009): a clean value ``c`` is seen, on
average, as ``E[clip(c + n)]``. A trained denoiser learns to undo that lift, but only roughly;
beside bright clouds, say, a dark sky keeps a lift of an LSB or more.

:func:`match_means` corrects what is left: it finds the smooth offset that makes the output's
expected noisy means, ``E[clip(y + n)]`` blurred over about ten pixels, equal the noisy
input's own blurred means. Only the low frequencies move; detail is the denoiser's. Blurring the
input's noise costs no detail either: below a blur of this size a denoiser passes the noise's
low frequencies through anyway (no model tells them from the photo), so the correction mostly
removes the bias. The noise level comes from the input and output (:func:`estimate_sigma`): the
denoiser's residual ``x - y`` is the noise it removed.

Pure numpy, on the whole image (after tiling: the correction is smooth, so tiles do not show),
in strips of rows; the offset itself is settled on a grid four times coarser.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .model_io import UNIT_SCALE, to_unit

# Blur scale (pixels, the standard deviation of a near-Gaussian kernel) over which means must
# match: wide enough that the input's noise averages out (noise of level 25 leaves ~0.7 LSB), local
# enough to follow a dark region beside a bright one.
RADIUS = 10.0
# The correction is smooth: it is computed on a grid this many times coarser, then interpolated.
COARSE = 4
# Pixels per strip of full-size work, rows of a strip the noise level is read from, and the
# pixels it is read from.
STRIP_PIXELS = 1 << 20
STRIP = 64
SIGMA_SAMPLE = 1 << 21
ITERATIONS = 3  # the clipping term is not linear: a few steps settle it (2 left ~0.05 LSB)
# A clean value this close to a bound, in sigmas, clips too often for the noise there to count
# towards the noise level.
_CLEAR = 2.0

_Z = np.linspace(-8.0, 8.0, 3201)
_CDF = np.array([0.5 * (1.0 + math.erf(z / math.sqrt(2.0))) for z in _Z])
_PDF = np.exp(-(_Z**2) / 2.0) / math.sqrt(2.0 * math.pi)
_GRID = np.linspace(0.0, 1.0, 16385)


def _cdf(z: np.ndarray) -> np.ndarray:
    return np.asarray(np.interp(z, _Z, _CDF))


def _pdf(z: np.ndarray) -> np.ndarray:
    return np.asarray(np.interp(z, _Z, _PDF))


def expected_clipped(clean: np.ndarray, sigma: float) -> np.ndarray:
    """``E[clip(clean + n, 0, 1)]`` for ``n ~ N(0, sigma^2)``: what noise of that level, clipped
    as a file clips it, shows of each clean value on average."""
    s = max(float(sigma), 1e-4)
    a, b = -clean / s, (1.0 - clean) / s
    return np.asarray((1.0 - _cdf(b)) + clean * (_cdf(b) - _cdf(a)) + s * (_pdf(a) - _pdf(b)))


def unclipped_share(clean: np.ndarray, sigma: float) -> np.ndarray:
    """The derivative of :func:`expected_clipped`: the share of noisy samples left unclipped."""
    s = max(float(sigma), 1e-4)
    return np.asarray(_cdf((1.0 - clean) / s) - _cdf(-clean / s))


def clipped_curvature(clean: np.ndarray, sigma: float) -> np.ndarray:
    """The second derivative of :func:`expected_clipped` in ``clean``."""
    s = max(float(sigma), 1e-4)
    return np.asarray((_pdf(-clean / s) - _pdf((1.0 - clean) / s)) / s)


def _laplacian(a: np.ndarray) -> np.ndarray:
    """The 3x3 second difference (weights 1 -2 1 / -2 4 -2 / 1 -2 1): white noise of level
    sigma comes out with level 6 sigma; smooth content cancels."""
    return np.asarray(
        a[:-2, :-2] - 2 * a[:-2, 1:-1] + a[:-2, 2:]
        - 2 * a[1:-1, :-2] + 4 * a[1:-1, 1:-1] - 2 * a[1:-1, 2:]
        + a[2:, :-2] - 2 * a[2:, 1:-1] + a[2:, 2:]
    )  # fmt: skip


def _neighbourhood(a: np.ndarray, pick: str) -> np.ndarray:
    """The minimum or maximum over each pixel's 3x3 neighbourhood (the interior, as
    :func:`_laplacian` gives)."""
    h, w = a.shape[0] - 2, a.shape[1] - 2
    reduce = np.minimum if pick == "min" else np.maximum
    out = a[1:-1, 1:-1].copy()
    for dy in range(3):
        for dx in range(3):
            reduce(out, a[dy : dy + h, dx : dx + w], out=out)
    return out


def _strips(h: int, height: int) -> list[tuple[int, int]]:
    return [(r, min(h, r + height)) for r in range(0, h, height)]


def estimate_sigma(noisy: np.ndarray, denoised: np.ndarray) -> float:
    """The noise level of ``noisy`` (HWC; uint8, uint16 or float in [0, 1]) in [0, 1] units,
    from the Laplacian of the residual ``noisy - denoised`` (the detail the denoiser kept
    cancels) by its median absolute value, over pixels whose denoised neighbourhood sits clear
    of 0 and 1 (noise clipped there is smaller: counting it would underestimate). A large image
    is sampled in strips of rows spread over it. 0 for an image under 3x3."""
    h, w = noisy.shape[:2]
    if h < 3 or w < 3:
        return 0.0
    rows = max(3, min(h, SIGMA_SAMPLE // max(1, w)))
    count = max(1, -(-rows // STRIP))
    starts = np.linspace(0, h - min(h, STRIP + 2), count).astype(int) if h > STRIP + 2 else [0]
    responses, lows, highs = [], [], []
    for r0 in sorted(set(int(v) for v in starts)):
        r1 = min(h, r0 + STRIP + 2)
        if r1 - r0 < 3:
            continue
        y = np.asarray(denoised[r0:r1], dtype=np.float32)
        residual = to_unit(noisy[r0:r1]) - y
        for k in range(noisy.shape[2]):
            responses.append(np.abs(_laplacian(residual[:, :, k])).ravel())
            lows.append(_neighbourhood(y[:, :, k], "min").ravel())
            highs.append(_neighbourhood(y[:, :, k], "max").ravel())
    r, low, high = np.concatenate(responses), np.concatenate(lows), np.concatenate(highs)
    sigma = float(np.median(r)) / 0.6745 / 6.0
    for _ in range(3):  # the pixels that count depend on the level: settle both
        clear = (low > _CLEAR * sigma) & (high < 1.0 - _CLEAR * sigma)
        if np.count_nonzero(clear) < 256:
            break
        sigma = float(np.median(r[clear])) / 0.6745 / 6.0
    return sigma


def _grid_index(y: np.ndarray) -> np.ndarray:
    """The nearest sample of :data:`_GRID` to each ``y`` in [0, 1]: the grid is fine enough
    (16384 steps) that a table read there is within 0.01 LSB, and no search is needed."""
    i = y * np.float32(len(_GRID) - 1)
    i += np.float32(0.5)
    return i.astype(np.int32)


def _box(a: np.ndarray, r: int, axis: int) -> np.ndarray:
    """Mean over a window of 2r+1 along ``axis`` (0 or 1, every channel at once), edges
    mirrored (repeated where the image is shorter than the window): a sum of 2r+1 shifted
    slices (r is a few cells on the coarse grid, where a running sum along an inner axis is
    slower)."""
    n = a.shape[axis]
    pad = [(0, 0)] * a.ndim
    pad[axis] = (r, r)
    padded = np.pad(a, pad, mode="symmetric" if r < n else "edge")
    if axis == 0:
        out = padded[:n].copy()
        for k in range(1, 2 * r + 1):
            out += padded[k : k + n]
    else:
        out = padded[:, :n].copy()
        for k in range(1, 2 * r + 1):
            out += padded[:, k : k + n]
    out *= np.float32(1.0 / (2 * r + 1))
    return out


def _blur(a: np.ndarray, scale: float) -> np.ndarray:
    """Three box passes each way: a near-Gaussian blur of standard deviation ~``scale``."""
    r = max(1, round((math.sqrt(1.0 + 4.0 * scale * scale) - 1.0) / 2.0))
    for _ in range(3):
        a = _box(_box(a, r, 0), r, 1)
    return a


def _coarsen(a: np.ndarray, f: int) -> np.ndarray:
    """Means over f x f blocks (the last partial blocks padded by repeating the edge), as sums
    of strided slices: numpy reduces a reshaped (h, f, w, f) array several times slower."""
    h, w = a.shape[:2]
    hp, wp = -(-h // f) * f, -(-w // f) * f
    if (hp, wp) != (h, w):
        a = np.pad(a, ((0, hp - h), (0, wp - w), (0, 0)), mode="edge")
    rows = a[0::f].astype(np.float32)
    for k in range(1, f):
        rows += a[k::f]
    out = rows[:, 0::f].copy()
    for k in range(1, f):
        out += rows[:, k::f]
    out *= np.float32(1.0 / (f * f))
    return out


def _add_refined(band: np.ndarray, a: np.ndarray, f: int, r0: int) -> None:
    """Add to ``band`` (rows r0.. of the full image) the bilinear interpolation of the coarse
    grid ``a`` (values at block centres; clamped beyond the first and last centre). Columns go
    phase by phase (x = p, p + f, ...), each phase one pair of shifted slices: no gathers at
    full size."""
    m_rows = a.shape[0]
    pos = np.clip((np.arange(r0, r0 + band.shape[0]) + 0.5) / f - 0.5, 0.0, m_rows - 1.0)
    y0 = pos.astype(np.int64)
    y1 = np.minimum(y0 + 1, m_rows - 1)
    ty = (pos - y0).astype(np.float32)[:, None, None]
    rows = a[y0] * (1 - ty) + a[y1] * ty  # (band rows, coarse columns, C)
    padded = np.concatenate([rows[:, :1], rows, rows[:, -1:]], axis=1)  # edge cells repeated
    w = band.shape[1]
    for p in range(f):
        n = len(range(p, w, f))
        if n == 0:
            continue
        d = (p + 0.5) / f - 0.5  # where column p + f*j sits from centre j, in cells
        left = 0 if d < 0 else 1  # padded index of the cell left of it, for j = 0
        t = np.float32(d + 1 if d < 0 else d)
        band[:, p::f] += (
            padded[:, left : left + n] * (1 - t) + padded[:, left + 1 : left + 1 + n] * t
        )


def match_means(
    noisy: np.ndarray,
    denoised: np.ndarray,
    sigma: float | None = None,
    radius: float = RADIUS,
    check: Callable[[], None] | None = None,
    inplace: bool = False,
) -> np.ndarray:
    """``denoised`` (HWC float) with its local means matched to ``noisy``'s (HWC: uint8,
    uint16, or float in [0, 1]) under clipped Gaussian noise of level ``sigma`` ([0, 1] units;
    None estimates it). Noise that was not clipped (a float input outside [0, 1]) is matched
    without the clipping term. Returns float32 in [0, 1]; ``inplace`` changes (and returns)
    ``denoised`` itself when it is float32, saving a copy. Full-size work goes in strips of
    rows, so the memory it takes beyond the two images is a fraction of one; ``check`` is
    called between strips (to stop a cancelled run, by raising)."""
    y = denoised if inplace and denoised.dtype == np.float32 else denoised.astype(np.float32)
    if noisy.shape != y.shape or y.ndim != 3:
        raise ValueError(
            f"match_means needs two HWC images of one shape, got {noisy.shape}, {y.shape}"
        )
    np.clip(y, 0.0, 1.0, out=y)
    h, w = y.shape[:2]
    s = estimate_sigma(noisy, y) if sigma is None else float(sigma)
    # An integer image was clipped to its range; a float one was where it stays in [0, 1].
    # Noise under half a step barely clips: its lift is a fifth of a step at most.
    clipped = s >= 0.5 / 255 and (
        noisy.dtype.kind != "f" or (float(noisy.min()) >= 0.0 and float(noisy.max()) <= 1.0)
    )
    # Expected noisy value, its slope and its curvature, tabulated once per image at this level.
    table = expected_clipped(_GRID, s).astype(np.float32) if clipped else _GRID.astype(np.float32)
    slope = unclipped_share(_GRID, s).astype(np.float32) if clipped else np.ones_like(table)
    curve = clipped_curvature(_GRID, s).astype(np.float32) if clipped else np.zeros_like(table)
    f = COARSE if min(h, w) >= 4 * COARSE else 1
    strips = _strips(h, max(1, STRIP_PIXELS // max(1, w * f)) * f)
    # The expected noisy means of y + d, d a smooth offset, to second order in d: the image is
    # read once for them, the offset is settled on the coarse grid, and the image is touched
    # once more to add it.
    sums: list[list[np.ndarray]] = [[], [], [], []]
    for r0, r1 in strips:
        part = y[r0:r1]
        at = _grid_index(part)
        # Integer pixels are summed as they are and scaled on the coarse grid: two full-size
        # passes fewer than converting them first.
        raw = noisy[r0:r1]
        scale = UNIT_SCALE.get(raw.dtype)
        block_x = _coarsen(raw, f) if scale else _coarsen(to_unit(raw), f)
        sums[0].append(block_x * np.float32(scale) if scale else block_x)
        for k, sample in enumerate((table[at], slope[at], curve[at]), start=1):
            sums[k].append(_coarsen(sample, f))
        if check is not None:
            check()
    coarse_x, seen, first, second = (np.concatenate(parts) for parts in sums)
    # Where nearly every sample clips (a blown-out sky) the means say little: the floor caps
    # the step there.
    weight = np.maximum(_blur(first, radius / f), 0.05)
    offset = np.zeros_like(coarse_x)
    for _ in range(ITERATIONS):
        expected = seen + first * offset
        if clipped:
            # The second-order term only where the model stays monotone in the offset (at a
            # bound with little noise the curvature is a spike, and the step would run away).
            curved = second * offset
            expected += np.where(np.abs(curved) < first, 0.5 * curved * offset, 0.0)
        offset += _blur(coarse_x - expected, radius / f) / weight
    offset = offset.astype(np.float32)
    for r0, r1 in strips:
        band = y[r0:r1]
        _add_refined(band, offset, f, r0)
        np.clip(band, 0.0, 1.0, out=band)
        if check is not None:
            check()
    return y
