"""The photos edgegen trains, verifies and compares on, decoded one way.

A photo set is a user's folder (or file), or the photos that ship inside scikit-image's wheel
(no download needed), split once: the training photos and three held-out ones that training
never sees, and that export verifies and compare measures on. Every photo is decoded here into
the model's channels (:func:`load_photo`), through the runtime's image reader, so training,
calibration, verification and comparison see the same pixels and fail the same way on a bad
file.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.images import IMAGE_SUFFIXES, open_still

# The held-out photos that ship inside scikit-image: training never sees them, export verifies
# and compare measures on them. chelsea.png is also data.cat().
BUNDLED_HELD_OUT = ("chelsea.png", "rocket.jpg", "coffee.png")

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
    """scikit-image's data folder, found without importing scikit-image."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise EdgegenError("the bundled photos need scikit-image: pip install 'edgegen[train]'")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


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
        hint = ""
        if "photos" in root.parts and root.name in ("train", "held-out", "photos"):
            hint = " (`make data` fetches the training and held-out photos into data/photos)"
        raise EdgegenError(f"data path {root} does not exist{hint}")
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
    Raises :class:`EdgegenError` (one line, naming the file) for a file that is not a readable
    still image.
    """
    with open_still(path) as image:
        try:
            return Photo(path.name, _to_array(image, channels))
        except (OSError, ValueError) as exc:  # a mode Pillow cannot convert
            raise EdgegenError(f"image {path} cannot be converted: {exc}") from None


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
        except EdgegenError as exc:
            failed.append((path, str(exc).splitlines()[0]))
            continue
        if photo.height < 2 or photo.width < 2:
            failed.append((path, f"too small ({photo.width}x{photo.height})"))
            continue
        photos.append(photo)
    return LoadResult(photos, failed)


def held_out_photos(source: str, channels: int, option: str = "--images") -> list[Photo]:
    """The photos a model is verified or compared on: ``bundled`` (the held-out photos inside
    scikit-image), an image file, or the images under a folder. ``option`` names the setting
    in messages. Any unreadable photo is an error: a verification set must be what it says."""
    if source == "bundled":
        paths = bundled_paths("val")
        root = None
    else:
        root = Path(source)
        if not root.exists():
            raise EdgegenError(f"{option} {source}: no such file or folder")
        if root.is_dir() and not any(
            p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in root.rglob("*")
        ):
            raise EdgegenError(f"{option} {source}: the folder holds no images")
        paths = find_images(root)
    photos = [load_photo(path, channels) for path in paths]
    if root is not None and root.is_dir():
        for path, photo in zip(paths, photos, strict=True):
            photo.name = path.relative_to(root).as_posix()
    return photos
