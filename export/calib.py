"""Calibration inputs for static int8 quantization, cut from real photos.

Static quantization fixes every activation's range ahead of time from the values the model sees
during calibration, so those inputs must look like what the model will meet in use: crops of real
photos, degraded exactly as the model was trained to undo (the spec's ``degradation``). Random
tensors or clean photos would give ranges that clip or waste the 256 levels.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader
from tqdm import tqdm

from edgegen.evaluation.degrade import degradation_from_spec
from edgegen.evaluation.photos import Photo, bundled_paths, find_images, load_all
from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.model_io import pad_to_multiple
from edgegen.runtime.spec import ModelSpec

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _load_photos(source: str, channels: int, log: Log) -> list[Photo]:
    """The clean photos of ``source``: the bundled training photos, or a user's folder."""
    if source == "bundled":
        # Training photos only: the held-out ones must stay unseen by every step, calibration
        # included, so that an accuracy comparison on them stays honest.
        result = load_all(bundled_paths("train"), channels)
        where = "the bundled photos"  # unreachable in practice: they ship with scikit-image
    else:
        root = Path(source)
        if not root.exists():
            raise EdgegenError(f"calibration folder {root} does not exist")
        try:
            paths = find_images(root)
        except EdgegenError:
            # find_images words it for --data; say which option the user got wrong.
            raise EdgegenError(f"calibration folder {root} contains no images") from None
        result = load_all(paths, channels, root)
        where = f"calibration folder {root}"
    if result.failed:
        listing = "; ".join(f"{p} ({why})" for p, why in result.failed)
        log(f"edgegen: warning: skipped {len(result.failed)} unreadable image(s): {listing}")
    if not result.photos:
        raise EdgegenError(f"no readable images in {where}")
    return result.photos


def calibration_inputs(
    spec: ModelSpec,
    source: str = "bundled",
    count: int = 32,
    size: int = 64,
    seed: int = 0,
    *,
    log: Log = _stderr,
) -> list[np.ndarray]:
    """``count`` model inputs: seeded random crops of clean photos, degraded as in training.

    Each is float32 NCHW ``(1, C, h, w)`` in [0, 1] with ``C = spec.in_channels``, padded to the
    spec's pad multiple as the runtime pads; a crop covers
    ``size`` x ``size`` *output* pixels (so an SR model's input is ``size / scale`` on a side),
    or the whole photo where it is smaller. Photos are visited in a shuffled round-robin rather
    than drawn independently, so every photo contributes before any contributes twice. The same
    arguments always give the same arrays.

    ``source`` is ``"bundled"`` (scikit-image's training photos, never the held-out ones) or a
    folder of images; unreadable files are skipped and named in one warning sent to ``log``.
    Raises :class:`EdgegenError` (one line) for a count below 1, a missing folder, a folder
    without images or without a readable one.
    """
    if count < 1:
        raise EdgegenError(f"calibration count must be at least 1, got {count}")
    if size < spec.scale:
        raise EdgegenError(f"calibration crop size must be at least {spec.scale}, got {size}")
    if not spec.degradation:
        raise EdgegenError(
            "the model spec records no degradation; calibration needs it to make model inputs"
        )
    try:
        degrade = degradation_from_spec(spec.degradation)
    except (ValueError, KeyError) as exc:
        raise EdgegenError(f"the model spec's degradation is not usable: {exc}") from None

    photos = _load_photos(source, spec.in_channels, log)
    # A crop must be a whole number of input pixels, so its side is a multiple of the scale.
    usable = [p for p in photos if min(p.height, p.width) >= spec.scale]
    if not usable:
        raise EdgegenError(
            f"every calibration image is smaller than the model's scale {spec.scale}"
        )

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(usable))
    inputs: list[np.ndarray] = []
    for i in range(count):
        photo = usable[int(order[i % len(usable)])]
        h = min(size, photo.height) // spec.scale * spec.scale
        w = min(size, photo.width) // spec.scale * spec.scale
        top = int(rng.integers(photo.height - h + 1))
        left = int(rng.integers(photo.width - w + 1))
        # Crop before converting to float: some photos are large and only a patch is needed.
        clean = Photo(photo.name, photo.pixels[top : top + h, left : left + w]).as_float()
        degraded = np.clip(degrade(np.ascontiguousarray(clean), rng), 0.0, 1.0)
        x = np.ascontiguousarray(degraded.transpose(2, 0, 1)[None], dtype=np.float32)
        # Padded as the runtime pads: the graph may take multiples of the pad multiple only.
        inputs.append(np.ascontiguousarray(pad_to_multiple(x, spec.pad_multiple)))
    return inputs


class CalibrationReader(CalibrationDataReader):
    """Feeds calibration arrays to onnxruntime's calibrator, one per call, with a progress bar.

    onnxruntime pulls inputs with ``get_next()`` until it returns ``None``; the bar (``tqdm`` on
    stderr, ``progress=False`` turns it off) shows how far calibration, the slow part of static
    quantization, has got.
    """

    def __init__(
        self, inputs: list[np.ndarray], input_name: str = "input", progress: bool = True
    ) -> None:
        self.inputs = inputs
        self.input_name = input_name
        self.progress = progress
        self._index = 0
        self._bar: tqdm[None] | None = None

    def get_next(self) -> dict[str, np.ndarray] | None:  # type: ignore[override]
        if self._bar is None and self._index == 0:
            self._bar = tqdm(
                total=len(self.inputs),
                desc="calibrate",
                unit="img",
                dynamic_ncols=True,
                mininterval=0.5 if sys.stderr.isatty() else 10.0,
                file=sys.stderr,
                disable=not self.progress,
            )
        elif self._bar is not None:
            # onnxruntime asks for the next input once it has run the previous one.
            self._bar.update(1)
        if self._index >= len(self.inputs):
            self._close()
            return None
        item = self.inputs[self._index]
        self._index += 1
        return {self.input_name: item}

    def __len__(self) -> int:
        return len(self.inputs)

    def rewind(self) -> None:
        """Start again from the first input (onnxruntime's examples call this between passes)."""
        self._close()
        self._index = 0

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
