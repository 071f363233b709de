"""Finding and decoding training photos: a user's folder, or the photos inside scikit-image."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.images import BUNDLED_HELD_OUT  # the fixed held-out split

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

# Photos that ship inside scikit-image's wheel (no download needed). Synthetic images
# (checkerboards, blobs, logos, phantoms) are left out: they teach nothing about photos.
BUNDLED_TRAIN = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "clock_motion.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",  # data.immunohistochemistry()
    "moon.png",
    "motorcycle_left.png",  # data.stereo_motorcycle(): two views of one scene, both may train
    "motorcycle_right.png",
    "page.png",
    "retina.jpg",
    "text.png",
)


@dataclass(eq=False)  # compared by identity: pixel arrays have no meaningful ==
class Photo:
    """A decoded photo: HWC array (uint8, or uint16 for 16-bit sources) with 1 or 3 channels."""

    name: str  # the path relative to its data folder (file name for bundled photos)
    pixels: np.ndarray

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    def as_float(self) -> np.ndarray:
        """float32 HWC in [0, 1]."""
        scale = 65535.0 if self.pixels.dtype == np.uint16 else 255.0
        return self.pixels.astype(np.float32) / np.float32(scale)


def bundled_dir() -> Path:
    try:
        import skimage.data
    except ModuleNotFoundError:
        raise EdgegenError(
            "--data bundled needs scikit-image: pip install 'edgegen[train]'"
        ) from None
    return Path(os.path.dirname(skimage.data.__file__))


def bundled_paths(split: str) -> list[Path]:
    """The bundled photos of one split: 'train' or 'val'."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    names = BUNDLED_TRAIN if split == "train" else BUNDLED_HELD_OUT
    root = bundled_dir()
    paths = [root / n for n in names]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise EdgegenError(
            f"scikit-image at {root} lacks bundled photo(s) {', '.join(missing)}; reinstall it"
        )
    return paths


def find_images(root: Path) -> list[Path]:
    """Image files under ``root`` (recursive), sorted for a stable order; or ``root`` itself."""
    if not root.exists():
        raise EdgegenError(f"data path {root} does not exist")
    if root.is_file():
        return [root]
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise EdgegenError(
            f"data folder {root} contains no images ({', '.join(s[1:] for s in IMAGE_SUFFIXES)})"
        )
    return paths


def load_photo(path: Path, channels: int = 3) -> Photo:
    """Decode one image file into ``channels`` (1 or 3) channels.

    Gray becomes RGB by repetition and RGB becomes gray by Pillow's luma (ITU-R 601); alpha is
    composited over white (transparent areas of photos and scans are usually paper-white);
    palette images are expanded; 16-bit sources keep 16 bits. EXIF orientation is applied.
    Raises ``OSError``/``ValueError`` for files that are not readable images.
    """
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        img.load()
        upright = ImageOps.exif_transpose(img)
        return Photo(path.name, _to_array(upright, channels))


def _to_array(img, channels: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    from PIL import Image

    mode = img.mode
    if mode.startswith("I;16"):
        # Native uint16 whatever the file's byte order (I;16B arrays are big-endian '>u2').
        return _planes(np.asarray(img).astype(np.uint16), channels)
    if mode == "I":
        # 32-bit integer images: 16-bit data if any value needs it, else 8-bit.
        values = np.asarray(img)
        top = 65535 if values.max() > 255 else 255
        return _planes(
            np.clip(values, 0, top).astype(np.uint16 if top > 255 else np.uint8), channels
        )
    if mode == "F":
        values = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
        return _planes(np.round(values * 65535).astype(np.uint16), channels)
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba).convert("RGB")
        mode = "RGB"
    target = "RGB" if channels == 3 else "L"
    if mode != target:
        img = img.convert(target)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[..., None]
    return np.ascontiguousarray(arr)


def _planes(gray: np.ndarray, channels: int) -> np.ndarray:
    """HW -> HWC with 1 channel, or 3 by repetition."""
    arr = gray[..., None]
    return np.repeat(arr, 3, axis=2) if channels == 3 else arr


@dataclass
class LoadResult:
    photos: list[Photo]
    failed: list[tuple[Path, str]]


def load_all(paths: list[Path], channels: int, root: Path | None = None) -> LoadResult:
    """Decode every path; unreadable files are collected (path, reason), not fatal.

    Photos are named by their path relative to ``root`` (when given), so that two files called
    img.png in different subfolders stay distinguishable in messages.
    """
    photos: list[Photo] = []
    failed: list[tuple[Path, str]] = []
    for path in paths:
        try:
            photo = load_photo(path, channels)
            if root is not None and root.is_dir():
                photo.name = path.relative_to(root).as_posix()
        except Exception as exc:  # Pillow raises many types for corrupt data; any means "skip"
            failed.append((path, f"{type(exc).__name__}: {exc}".splitlines()[0]))
            continue
        if photo.height < 2 or photo.width < 2:
            failed.append((path, f"too small ({photo.width}x{photo.height})"))
            continue
        photos.append(photo)
    return LoadResult(photos, failed)
