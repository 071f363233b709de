"""Image files through Pillow (imported lazily), and a numpy-only resize for alpha channels.

:func:`read_image` returns uint8 HWC (or HW for gray) arrays, uint16 for 16-bit gray PNGs and
float32 for 32-bit float (mode F) TIFFs, values as the file holds them; EXIF orientation is
applied, palette/CMYK/other modes are converted, and every failure (missing, a FIFO or device,
permission denied, truncated, not an image, animated, over Pillow's pixel limit) is one
:class:`EdgegenError` naming the file. :func:`read_image_profile` also returns the file's ICC
colour profile, which :func:`write_image` embeds in the output: a model works on the values as
they are encoded, so its output is in the input's colour space, and the profile says which.
:func:`write_image` writes atomically (temporary name beside the target, then renamed).
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EdgegenError
from .files import atomic_write, check_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


def read_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as uint8 (uint16, float32) HW / HWC; ``max_pixels`` overrides
    Pillow's limit."""
    return read_image_profile(path, max_pixels)[0]


def read_image_profile(
    path: str | Path, max_pixels: int | None = None
) -> tuple[np.ndarray, bytes | None]:
    """:func:`read_image` and the file's ICC profile (None without one, or when the pixels were
    converted to another colour space than the profile's, e.g. CMYK to RGB)."""
    with open_still(path, max_pixels) as image:
        array = _to_array(image)
        profile = image.info.get("icc_profile")
    if not isinstance(profile, bytes) or _profile_space(profile) != _array_space(array):
        profile = None
    return array, profile


def _profile_space(profile: bytes) -> str:
    """An ICC profile's colour space signature (bytes 16..20 of its header): 'RGB ', 'GRAY'..."""
    return profile[16:20].decode("latin-1") if len(profile) >= 20 else ""


def _array_space(array: np.ndarray) -> str:
    return "RGB " if array.ndim == 3 and array.shape[2] in (3, 4) else "GRAY"


@contextlib.contextmanager
def open_still(path: str | Path, max_pixels: int | None = None) -> Iterator[Any]:
    """The decoded, upright (EXIF orientation applied) Pillow image of a still image file.

    Every failure to open or decode it (missing, truncated, not an image, animated, over
    Pillow's pixel limit) is one :class:`EdgegenError` naming the file; the evaluation photo
    sets decode through here too, so that every photo edgegen reads fails the same way.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    check_file(path, "image")  # before opening: a FIFO would block, a device never ends
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's notes on odd files ("Invalid APNG")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            old = Image.MAX_IMAGE_PIXELS
            try:
                if max_pixels is not None:  # pragma: no cover - process-wide; CLI does not use it
                    Image.MAX_IMAGE_PIXELS = max_pixels
                with Image.open(path) as opened:
                    frames = getattr(opened, "n_frames", 1)
                    if frames > 1:  # which frame a user means is a guess: ask for a still
                        raise EdgegenError(
                            f"image {path} is animated or multi-page ({frames} frames); "
                            "edgegen reads still images: extract one frame first"
                        )
                    opened.load()
                    upright = ImageOps.exif_transpose(opened)
                    if "icc_profile" in opened.info:  # kept whatever the transpose copies
                        upright.info["icc_profile"] = opened.info["icc_profile"]
            finally:
                Image.MAX_IMAGE_PIXELS = old
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        numbers = re.findall(r"\d+", str(exc))
        pixels = numbers[0] if numbers else "too many"
        raise EdgegenError(f"image {path} has {pixels} pixels, over the limit of {limit}") from None
    except FileNotFoundError:
        raise EdgegenError(f"image {path}: no such file") from None
    except IsADirectoryError:
        raise EdgegenError(f"image {path} is a folder") from None
    except PermissionError:
        raise EdgegenError(f"image {path}: permission denied") from None
    except UnidentifiedImageError:
        raise EdgegenError(f"image {path}: not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgegenError(f"image {path} is unreadable (truncated or corrupt?): {first}") from None
    yield upright


def _to_array(im: Any) -> np.ndarray:
    mode = im.mode
    if mode == "F":  # 32-bit float (TIFF): the values as stored, [0, 1] for an image
        floats: np.ndarray = np.ascontiguousarray(np.asarray(im, dtype=np.float32))
        return floats
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr: np.ndarray = np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
        return arr
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
    elif mode not in ("L", "RGB", "RGBA"):
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX ...
    out: np.ndarray = np.ascontiguousarray(np.asarray(im, dtype=np.uint8))
    return out


def write_image(path: str | Path, array: np.ndarray, icc_profile: bytes | None = None) -> None:
    """Write a uint8/uint16/float HW or HWC (1, 3, 4 channels) array; the format follows the
    suffix. Floats are in [0, 1]: gray ones are written as 16-bit (PNG, TIFF), colour ones as
    8-bit (Pillow writes no 16-bit colour). ``icc_profile`` is embedded where the format holds
    one (PNG, JPEG, WebP, TIFF)."""
    from PIL import Image

    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise EdgegenError(f"{path}: unknown image suffix; use one of {', '.join(IMAGE_SUFFIXES)}")
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise EdgegenError(f"{path}: cannot write an image of shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise EdgegenError(f"{path}: the image holds NaN or inf values; nothing written")
        unit = np.clip(arr, 0.0, 1.0)
        if arr.ndim == 2 and fmt in ("PNG", "TIFF"):
            arr = np.rint(unit * 65535.0).astype(np.uint16)
        else:
            arr = np.rint(unit * 255.0).astype(np.uint8)
    if arr.dtype == np.uint16:
        if arr.ndim == 2 and fmt in ("PNG", "TIFF"):
            im = Image.fromarray(arr.astype(np.uint16))  # mode I;16
        else:  # Pillow has no 16-bit colour; keep the top 8 bits
            arr = (arr >> 8).astype(np.uint8)
            im = Image.fromarray(arr)
    elif arr.dtype == np.uint8:
        im = Image.fromarray(arr)
    else:
        raise EdgegenError(
            f"{path}: write_image takes uint8, uint16 or float arrays, got {arr.dtype}"
        )
    if fmt == "JPEG" and im.mode == "RGBA":
        im = im.convert("RGB")

    def write(tmp: Path) -> None:
        extra = {"icc_profile": icc_profile} if icc_profile and fmt != "BMP" else {}
        im.save(tmp, format=fmt, **extra)  # the temporary's suffix is .tmp: give the format

    atomic_write(path, write)


def resize(array: np.ndarray, scale: int, method: str = "bilinear") -> np.ndarray:
    """Upscale HW or HWC by an integer ``scale`` (numpy only): ``nearest`` or ``bilinear``
    (half-pixel centres, edges clamped, as Pillow/OpenCV do)."""
    if scale == 1:
        return array
    if method == "nearest":
        return np.repeat(np.repeat(array, scale, axis=0), scale, axis=1)
    if method != "bilinear":
        raise EdgegenError(f"unknown resize method {method!r}")
    src = array.astype(np.float32)
    for axis in (0, 1):
        n = src.shape[axis]
        pos = (np.arange(n * scale, dtype=np.float32) + 0.5) / scale - 0.5
        pos = np.clip(pos, 0, n - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n - 1)
        frac = pos - lo
        shape = [1] * src.ndim
        shape[axis] = -1
        frac = frac.reshape(shape)
        src = np.take(src, lo, axis=axis) * (1 - frac) + np.take(src, hi, axis=axis) * frac
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        return np.clip(np.rint(src), info.min, info.max).astype(array.dtype)
    return src.astype(array.dtype)
