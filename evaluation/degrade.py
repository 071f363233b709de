"""Degradations made on the fly from clean photos: what each task's model learns to undo.

Each works on float32 HWC arrays in [0, 1] and draws its randomness from the ``rng`` it is given,
so a sample is a pure function of (seed, index): reproducible across workers, ranks and resumes.
Training makes its pairs with them, and export's verification and the torch-free
``edgegen compare`` their ground truth: numpy, and Pillow when called.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

Range = tuple[float, float]


def _draw(value: float | Range, rng: np.random.Generator) -> float:
    if isinstance(value, tuple):
        return float(rng.uniform(value[0], value[1]))
    return float(value)


def _describe(value: float | Range) -> float | list[float]:
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class GaussianNoise:
    """Additive white Gaussian noise of ``sigma`` (in 8-bit steps, or a range for blind
    denoising), clipped to [0, 1] and rounded to 8 bits, as a noisy photo on disk holds it.

    Clipping skews the noise where the photo is dark or saturated (its mean there is no longer
    the clean value): a model must learn to undo that too, or it shifts the colours of dark
    backgrounds."""

    sigma: float | Range

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        sigma = _draw(self.sigma, rng) / 255.0
        noise = rng.standard_normal(clean.shape, dtype=np.float32) * np.float32(sigma)
        noisy = np.clip(clean + noise, 0.0, 1.0)
        quantized: np.ndarray = (np.round(noisy * 255.0) / 255.0).astype(np.float32)
        return quantized

    def describe(self) -> dict[str, Any]:
        return {"kind": "gaussian_noise", "sigma": _describe(self.sigma)}


@dataclass(frozen=True)
class BicubicDownscale:
    """Bicubic downscaling by ``scale`` with antialiasing (Pillow's resampling filter widens with
    the factor), quantized to 8 bits as a stored low-resolution image is."""

    scale: int

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from PIL import Image

        h, w, c = clean.shape
        size = (w // self.scale, h // self.scale)
        planes = [
            np.asarray(
                Image.fromarray(np.ascontiguousarray(clean[..., i]), mode="F").resize(
                    size, Image.Resampling.BICUBIC
                )
            )
            for i in range(c)
        ]
        low = np.stack(planes, axis=2)
        quantized: np.ndarray = (np.round(np.clip(low, 0.0, 1.0) * 255.0) / 255.0).astype(
            np.float32
        )
        return quantized

    def describe(self) -> dict[str, Any]:
        return {"kind": "bicubic_downscale", "scale": self.scale}


@dataclass(frozen=True)
class JpegCompression:
    """A Pillow JPEG re-encode at ``quality`` (or a range), 4:2:0 chroma as cameras store it."""

    quality: float | Range

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from PIL import Image

        quality = round(_draw(self.quality, rng))
        pixels = np.round(clean * 255.0).astype(np.uint8)
        img = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as decoded:
            out = np.asarray(decoded, dtype=np.float32) / 255.0
        return out[..., None] if out.ndim == 2 else out

    def describe(self) -> dict[str, Any]:
        return {"kind": "jpeg", "quality": _describe(self.quality)}


Degradation = GaussianNoise | BicubicDownscale | JpegCompression


def degradation_from_spec(described: dict[str, Any]) -> Degradation:
    """Rebuild a degradation from the ``describe()`` dict a model spec carries."""

    def value(key: str) -> float | Range:
        v = described[key]
        return (float(v[0]), float(v[1])) if isinstance(v, list) else float(v)

    kind = described.get("kind")
    if kind == "gaussian_noise":
        return GaussianNoise(value("sigma"))
    if kind == "bicubic_downscale":
        return BicubicDownscale(int(described["scale"]))
    if kind == "jpeg":
        return JpegCompression(value("quality"))
    raise ValueError(f"unknown degradation {kind!r} in the model spec")


def make_degradation(
    task: str, sigma: float | Range = 25.0, scale: int = 2, quality: float | Range = 30.0
) -> Degradation:
    if task == "denoise":
        return GaussianNoise(sigma)
    if task == "sr":
        return BicubicDownscale(scale)
    if task == "jpeg":
        return JpegCompression(quality)
    raise ValueError(f"unknown task {task!r}; choose from denoise, sr, jpeg")
