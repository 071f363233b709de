"""Property-based tests (hypothesis) of the runtime's array API on a real tiny exported model.

Random dtypes, shapes, channel counts and values (NaN, inf, out of range included) go to
``Generator.__call__``, ``run_batch`` and ``infer``. The answer is the correct shape and dtype,
or the documented :class:`EdgegenError` (one line), never another exception, a crash or a hang.
What counts as valid is written here from the docstrings, not taken from the code under test.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tinymodels import exported

from edgegen.runtime import EdgegenError, Generator

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same examples on every run and machine: a failure reproduces
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
IMAGE_DTYPES = (np.uint8, np.uint16, np.float32, np.float64)  # what __call__ documents
OTHER_DTYPES = (np.float16, np.int8, np.int32, np.int64, np.bool_, np.complex64)


@pytest.fixture(scope="module")
def gen() -> Generator:
    return Generator(exported(("fp32",)) / "model.fp32.onnx", device="cpu", threads=1)


def values(dtype: Any) -> st.SearchStrategy[Any]:
    """Any value of ``dtype``: the whole integer range; floats with NaN, inf and far out of
    [0, 1] included."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return st.floats(allow_nan=True, allow_infinity=True, width=dt.itemsize * 8)
    return hnp.from_dtype(dt)


@st.composite
def images(draw: st.DrawFn, dtypes: tuple[Any, ...] = IMAGE_DTYPES + OTHER_DTYPES) -> np.ndarray:
    dtype = draw(st.sampled_from(dtypes))
    ndim = draw(st.sampled_from([1, 2, 3, 3, 3, 4]))
    dims = [draw(st.integers(0, 20)) for _ in range(min(ndim, 2))]
    if ndim >= 3:
        dims.append(draw(st.integers(0, 6)))
    if ndim == 4:
        dims.insert(0, draw(st.integers(1, 2)))
    finite = draw(st.booleans())  # half the float examples are finite: the run path is reached
    elements = values(dtype)
    if finite and np.dtype(dtype).kind == "f":
        elements = st.floats(-0.5, 1.5, width=np.dtype(dtype).itemsize * 8)
    array: np.ndarray = draw(hnp.arrays(dtype, tuple(dims), elements=elements))
    return array


def valid_image(image: np.ndarray) -> bool:
    """What ``Generator.__call__`` documents: uint8/uint16/float32/float64, HW or HWC with 1, 3
    or 4 channels, non-empty; float values must be finite and within [-1, 2]."""
    if image.dtype not in IMAGE_DTYPES or image.ndim not in (2, 3):
        return False
    if image.shape[0] == 0 or image.shape[1] == 0:
        return False
    if image.ndim == 3 and image.shape[2] not in (1, 3, 4):
        return False
    if image.dtype.kind == "f":  # finite, and within the documented [-1, 2]
        return bool(np.isfinite(image).all() and image.min() >= -1.0 and image.max() <= 2.0)
    return True


def expected_dtype(image: np.ndarray) -> np.dtype[Any]:
    return np.dtype(np.float32) if image.dtype.kind == "f" else image.dtype


def check_output(image: np.ndarray, out: np.ndarray) -> None:
    assert out.shape == image.shape, (image.shape, out.shape)  # scale 1, same layout
    assert out.dtype == expected_dtype(image)
    if out.dtype == np.float32:
        assert np.isfinite(out).all()
        colour = out if out.ndim == 2 else out[..., : min(out.shape[2], 3)]
        assert colour.min() >= 0.0 and colour.max() <= 1.0
    if image.ndim == 3 and image.shape[2] == 4:  # alpha is carried through unchanged
        alpha = image[..., 3]
        np.testing.assert_array_equal(out[..., 3], alpha.astype(out.dtype))


def expect_one_line(err: pytest.ExceptionInfo[EdgegenError]) -> None:
    message = str(err.value)
    assert message and "\n" not in message


@SETTINGS
@given(image=images())
def test_call_gives_the_right_kind_of_image_or_the_documented_error(
    gen: Generator, image: np.ndarray
) -> None:
    if valid_image(image):
        check_output(image, gen(image))
    else:
        with pytest.raises(EdgegenError) as err:
            gen(image)
        expect_one_line(err)


@SETTINGS
@given(batch=st.lists(images(IMAGE_DTYPES), min_size=0, max_size=4), same=st.booleans())
def test_run_batch_is_each_image_run_alone(
    gen: Generator, batch: list[np.ndarray], same: bool
) -> None:
    if same and batch:  # same size and kind: goes through as one onnxruntime call
        batch = [batch[0].copy() for _ in batch]
    if all(valid_image(im) for im in batch):
        outs = gen.run_batch(batch)
        assert len(outs) == len(batch)
        for image, out in zip(batch, outs, strict=True):
            check_output(image, out)
            step = 1.0 if out.dtype.kind == "u" else 1e-5  # batching may round differently
            np.testing.assert_allclose(
                out.astype(np.float64), gen(image).astype(np.float64), rtol=0, atol=step
            )
    else:
        with pytest.raises(EdgegenError) as err:
            gen.run_batch(batch)
        expect_one_line(err)


@st.composite
def batches(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(st.sampled_from((np.float32, np.float64, np.float16, np.uint8, np.complex64)))
    ndim = draw(st.sampled_from([2, 3, 4, 4, 4, 5]))
    shape = [draw(st.integers(0, 2))] + [draw(st.integers(0, 12)) for _ in range(ndim - 1)]
    if ndim >= 2 and draw(st.booleans()):
        shape[1] = 3  # the model's channels: most batches get to run
    array: np.ndarray = draw(hnp.arrays(dtype, tuple(shape), elements=values(dtype)))
    return array


@SETTINGS
@given(batch=batches())
def test_infer_returns_float32_of_the_input_shape_or_the_documented_error(
    gen: Generator, batch: np.ndarray
) -> None:
    ok = (
        batch.dtype.kind in "uif"
        and batch.ndim == 4
        and batch.shape[1] == 3
        and batch.shape[2] > 0
        and batch.shape[3] > 0
    )
    if ok:
        out = gen.infer(batch)
        assert out.dtype == np.float32 and out.shape == batch.shape  # unprocessed: NaN may stay
    else:
        with pytest.raises(EdgegenError) as err:
            gen.infer(batch)
        expect_one_line(err)
