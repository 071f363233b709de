"""``Generator``: run an exported edgegen model on images with numpy + onnxruntime, never torch.

The model's spec (stored in the ONNX metadata by export) says how to feed it: channels, colour
order, value range, pad multiple and scale, so callers pass plain images::

    gen = Generator("model.fp32.onnx", device="cpu")
    out = gen(image)            # uint8/uint16/float HWC (or HW) in, the same kind out
    outs = gen.run_batch([a, b])
    raw = gen.infer(nchw)       # the model itself, no pre- or post-processing
    report = gen.verify()       # golden samples beside the model, on this provider

Thread-safe: onnxruntime's ``InferenceSession.run`` may be called from many threads at once, and
with IO binding each shape's reused buffers are used by one call at a time (a lock per shape).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import re
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from .errors import EdgegenError, ModelError, SpecError
from .files import check_file
from .io_binding import Bindings, BoundRun
from .manifest import check_manifest
from .model_io import from_model, output_shape, pad_to_multiple, to_model, to_unit
from .onnx_metadata import read_metadata
from .openvino_session import OpenVINOSession, open_ep_session, openvino_ep, parse_runtime
from .providers import CUDA, ProviderSpec
from .session import OpenedSession, open_session
from .session_config import SessionConfig
from .spec import METADATA_KEY, ModelSpec
from .tiling import AUTO_TILE, AUTO_TILE_PIXELS, default_margin, default_overlap, run_tiled

if TYPE_CHECKING:
    from .golden import VerifyReport

_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class TilingWarning(UserWarning):
    """Tiles change this model's output (its receptive field is global)."""


class Cancelled(EdgegenError):
    """A call stopped by :meth:`Generator.cancel` (Ctrl-C, a timeout)."""


_F = TypeVar("_F", bound=Callable[..., Any])


def _memory_guard(fn: _F) -> _F:
    """Turn numpy's MemoryError (a large image padded, converted, tiled) into one line."""

    @functools.wraps(fn)
    def guarded(self: Generator, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except MemoryError as exc:
            raise EdgegenError(
                f"out of memory running {self.path} ({_first_line(exc)}); "
                "use a smaller --tile or a smaller image"
            ) from None

    return guarded  # type: ignore[return-value]


@dataclass(frozen=True)
class _Prepared:
    """One input image split into its colour part and alpha, with how to give it back."""

    color: np.ndarray  # HWC, the caller's dtype, 1 or 3 channels
    alpha: np.ndarray | None  # HW, the caller's dtype
    dtype: np.dtype[Any]
    two_d: bool  # the caller passed HW (gray)
    gray_repeated: bool  # gray image repeated to 3 channels for an RGB model


class Generator:
    """An exported edgegen image model, ready to run on images.

    ``device``: ``"auto"`` (TensorRT > CUDA > CPU, logged), ``"cpu"``, ``"cuda"``, ``"tensorrt"``;
    or ``providers``: an explicit onnxruntime provider list. No silent fallback: an unavailable
    provider is an :class:`EdgegenError`. ``threads``: onnxruntime intra-op threads.
    ``tile``: None tiles only images over 1024x1024 pixels (in 512-pixel tiles), 0 never tiles,
    N tiles images larger than N in either side. ``overlap``: input pixels shared by neighbouring
    tiles (default: max(16, the receptive field), rounded up to the pad multiple).
    ``spec``: for a model whose file has no edgegen spec. ``verify_manifest``: when export's
    ``<model>.manifest.json`` sits beside the file, refuse a model whose sha256 differs from it.

    Session options (keyword-only; see :class:`edgegen.runtime.session_config.SessionConfig`):
    ``io_binding`` (default: on for CUDA/TensorRT, off on the CPU) reuses input/output buffers
    per shape; ``prefer_nhwc`` (default: on for CUDA) runs CUDA convolutions in NHWC;
    ``cuda_graph`` (default off) captures one CUDA graph per input shape, for fixed shapes;
    ``cudnn_conv_algo_search`` EXHAUSTIVE (onnxruntime's default), HEURISTIC or DEFAULT;
    ``tf32`` lets CUDA run fp32 convolutions in TF32 and ``fuse_conv_bias`` lets cuDNN add the
    bias inside the convolution kernel (default: both on for CUDA, off for a model whose spec
    says fp32, which then computes in fp32, in NCHW unless ``prefer_nhwc`` is given);
    ``trt_fp16`` and ``trt_engine_cache`` (a folder) for TensorRT; ``cpu_mem_arena`` (default on)
    is onnxruntime's CPU memory arena; ``spinning`` (default on) lets idle intra-op threads
    spin. A GPU-only option on a CPU session is an error.

    ``runtime``: ``"onnxruntime"`` (the default), or ``"openvino"`` to run the same file on
    OpenVINO (``pip install 'edgegen[openvino]'``; ``device`` cpu, or gpu where OpenVINO has one)
    computing in f32, ``"openvino:bf16"`` or ``"openvino:f16"`` at OpenVINO's faster inference
    precisions (:mod:`edgegen.runtime.openvino_session`). The API, tiling and :meth:`verify` are
    the same; onnxruntime's session options do not apply there, and :meth:`cancel` stops an
    OpenVINO call only before it starts.

    ``match_means``: after a denoiser runs on a whole image, match the output's local colour
    means to the input's (:mod:`edgegen.runtime.means`: the lift that clipping gives dark noisy
    pixels is undone exactly, not as the network guessed it). None (the default) does so for a
    model whose spec says it removes Gaussian noise; False returns the network's output as it
    is. It applies to images (``gen(image)``, :meth:`run_batch`), never to :meth:`infer`, which
    golden samples and comparisons check.
    """

    def __init__(
        self,
        path: str | Path,
        device: str = "auto",
        threads: int | None = None,
        tile: int | None = None,
        overlap: int | None = None,
        spec: ModelSpec | None = None,
        providers: Sequence[ProviderSpec] | None = None,
        verify_manifest: bool = True,
        *,
        io_binding: bool | None = None,
        prefer_nhwc: bool | None = None,
        cuda_graph: bool = False,
        cudnn_conv_algo_search: str | None = None,
        tf32: bool | None = None,
        fuse_conv_bias: bool | None = None,
        trt_fp16: bool = False,
        trt_engine_cache: str | Path | None = None,
        cpu_mem_arena: bool = True,
        spinning: bool = True,
        runtime: str = "onnxruntime",
        match_means: bool | None = None,
    ) -> None:
        self.path = Path(path)
        self._check_file(verify_manifest)
        self._local = threading.local()  # the RunOptions of this thread's call, when in one
        self._active: set[Any] = set()  # the RunOptions of every call in flight
        self._active_lock = threading.Lock()
        config = SessionConfig(
            threads=threads,
            io_binding=io_binding,
            prefer_nhwc=prefer_nhwc,
            cuda_graph=cuda_graph,
            cudnn_conv_algo_search=cudnn_conv_algo_search,
            tf32=tf32,
            fuse_conv_bias=fuse_conv_bias,
            trt_fp16=trt_fp16,
            trt_engine_cache=str(trt_engine_cache) if trt_engine_cache is not None else None,
            cpu_mem_arena=cpu_mem_arena,
            spinning=spinning,
        )
        known = spec if spec is not None else self._spec_from_file()
        # Which path runs the model where two could (runtime openvino: onnxruntime's OpenVINO
        # EP plugin or OpenVINO's own API), and why; None where there is one.
        self.backend_note: str | None = None
        self.runtime, option = parse_runtime(runtime)
        if self.runtime == "openvino":
            opened, self.spec = self._open_openvino(device, providers, config, known, option)
        else:
            opened, self.spec = self._open(
                providers if providers is not None else device, config, known
            )
        self._session = opened.session
        self._providers = opened.providers
        self.options = opened.config  # what applies, defaults filled in for the provider
        self._check_io()
        self._bindings = self._make_bindings()
        self.tile, self.overlap = self._tiling(tile, overlap)
        self._warned_tiling = False  # the global-field tiling warning is given once
        self.match_means = self._match_means(match_means)

    # -- the model -----------------------------------------------------------------------------

    def _match_means(self, asked: bool | None) -> bool:
        denoiser = self.spec.scale == 1 and self.spec.in_channels == self.spec.out_channels
        if asked is None:
            gaussian = self.spec.degradation.get("kind") == "gaussian_noise"
            return denoiser and self.spec.task == "denoise" and gaussian
        if asked and not denoiser:
            raise EdgegenError(
                f"{self.path.name}: match_means needs a model whose output matches its input "
                f"(scale 1, as many channels in as out); this one has scale {self.spec.scale}, "
                f"{self.spec.in_channels} -> {self.spec.out_channels} channels"
            )
        return asked

    def _check_file(self, verify_manifest: bool) -> None:
        if self.path.is_dir():
            raise EdgegenError(f"model {self.path} is a folder, not an ONNX file")
        check_file(self.path, "model")  # a FIFO would block onnxruntime's read for ever
        if verify_manifest:
            check_manifest(self.path)

    def _spec_from_file(self) -> ModelSpec | None:
        """The spec read from the file itself, before any session: the session options on CUDA
        depend on its precision. None for an ORT-format file, whose session says."""
        metadata = read_metadata(self.path)
        if metadata is None:
            return None
        return self._parse_spec(metadata.get(METADATA_KEY))

    def _open(
        self, device: str | Sequence[ProviderSpec], config: SessionConfig, spec: ModelSpec | None
    ) -> tuple[OpenedSession, ModelSpec]:
        """One session, with the options that suit the spec's precision (known from the file).
        Only an ORT-format file on CUDA, whose spec the session alone can give, may need a
        second one when the spec says fp32."""
        opened = open_session(self.path, device, config, spec.precision if spec else None)
        if spec is None:
            try:
                meta = opened.session.get_modelmeta().custom_metadata_map
            except (UnicodeDecodeError, RuntimeError) as exc:  # bytes that are not UTF-8
                raise EdgegenError(f"{self.path}: its metadata is unreadable: {exc}") from None
            spec = self._parse_spec(meta.get(METADATA_KEY))
            if opened.providers[0] == CUDA and config.for_precision(spec.precision) != config:
                opened = open_session(self.path, opened.providers, config, spec.precision)
        return opened, spec

    def _open_openvino(
        self,
        device: str,
        providers: Sequence[ProviderSpec] | None,
        config: SessionConfig,
        spec: ModelSpec | None,
        precision: str | None,
    ) -> tuple[OpenedSession, ModelSpec]:
        """The file compiled by OpenVINO; onnxruntime's own options are refused, not ignored."""
        if providers is not None:
            raise EdgegenError("providers= lists onnxruntime's providers; openvino takes device=")
        ours = dataclasses.replace(SessionConfig(), threads=config.threads)
        if dataclasses.replace(config, cpu_mem_arena=True, spinning=True) != ours:
            raise EdgegenError("onnxruntime's session options do not apply to runtime openvino")
        if spec is None:
            raise EdgegenError(f"{self.path}: runtime openvino reads ONNX files with a spec")
        off = dataclasses.replace(ours, io_binding=False)
        key = device.strip().lower()
        choice = openvino_ep("cpu" if key == "auto" else key, precision or "f32")
        if choice.devices:
            ep = open_ep_session(self.path, choice, precision or "f32", config.threads)
            self.backend_note = "onnxruntime's OpenVINO EP plugin ran it"
            return OpenedSession(ep, list(ep.get_providers()), off), spec
        session = OpenVINOSession(self.path, device, precision or "f32", config.threads)
        self.backend_note = f"OpenVINO's own API ran it: {choice.why}"
        return OpenedSession(session, session.get_providers(), off), spec

    def _parse_spec(self, text: str | None) -> ModelSpec:
        if text is None:
            raise EdgegenError(
                f"{self.path} has no edgegen spec in its metadata (key {METADATA_KEY!r}); "
                "export it with edgegen, or pass spec= to Generator"
            )
        try:
            return ModelSpec.from_json(text)
        except SpecError as exc:
            raise EdgegenError(f"{self.path}: bad edgegen spec: {exc}") from None

    def _make_bindings(self) -> Bindings | None:
        if not self.options.io_binding:
            return None
        return Bindings(
            self._session,
            (self._input_name, self._output_name),
            (np.dtype(self._input_dtype), np.dtype(self._output_dtype)),
            self._providers[0],
            self.options.cuda_graph,
        )

    def _tiling(self, tile: int | None, overlap: int | None) -> tuple[int | None, int]:
        if overlap is None:
            overlap = default_overlap(self.spec.receptive_field, self.spec.pad_multiple)
        if overlap < 0:
            raise EdgegenError(f"overlap must be >= 0, got {overlap}")
        if tile is not None and tile < 0:
            raise EdgegenError(f"tile must be >= 0 (0: never tile), got {tile}")
        return tile, overlap

    def _check_io(self) -> None:
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        where = f"not an edgegen image model: {self.path}"
        if len(inputs) != 1 or len(outputs) != 1:
            raise EdgegenError(
                f"{where} has {len(inputs)} input(s) and {len(outputs)} output(s), expected 1 and 1"
            )
        channel_axis = 1 if self.spec.layout == "NCHW" else 3
        for kind, arg, channels in (
            ("input", inputs[0], self.spec.in_channels),
            ("output", outputs[0], self.spec.out_channels),
        ):
            shape = list(arg.shape or [])
            if len(shape) != 4:
                raise EdgegenError(f"{where}: its {kind} {arg.name!r} has rank {len(shape)}, not 4")
            if shape[channel_axis] != channels:
                raise EdgegenError(
                    f"{where}: its {kind} {arg.name!r} has shape {shape}, the spec says "
                    f"{channels} channel(s) ({self.spec.layout})"
                )
            if arg.type not in _FLOAT_TYPES:
                raise EdgegenError(f"{where}: its {kind} {arg.name!r} is {arg.type}, not float")
        self._input_name = inputs[0].name
        self._output_name = outputs[0].name
        hw = [inputs[0].shape[a] for a in ((2, 3) if self.spec.layout == "NCHW" else (1, 2))]
        # A model exported for one size (many third-party ONNX files are) takes no other.
        self._fixed_hw = tuple(hw) if all(isinstance(d, int) and d > 0 for d in hw) else None
        # A graph for a batch of one (its exporter baked the batch into a reshape; many
        # third-party files too) runs a batch image by image.
        self._single = inputs[0].shape[0] == 1
        self._input_dtype = _FLOAT_TYPES[inputs[0].type]
        self._output_dtype = _FLOAT_TYPES[outputs[0].type]

    @property
    def providers(self) -> list[str]:
        """The providers the session actually runs on, in priority order."""
        return list(self._providers)

    @_memory_guard
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on a float batch in its own layout (NCHW for edgegen exports), values in
        the spec's range, sizes a multiple of the pad multiple; returns float32, unprocessed."""
        given = np.asarray(batch)
        if given.dtype.kind not in "biuf":  # complex, object, text: no silent cast
            raise EdgegenError(f"infer takes a real-valued batch, got dtype {given.dtype}")
        x = np.ascontiguousarray(given, dtype=self._input_dtype)
        if x.ndim != 4 or x.shape[1] != self.spec.in_channels or 0 in x.shape[2:]:
            raise EdgegenError(
                f"infer takes a float batch of shape (N, {self.spec.in_channels}, H, W); "
                f"got {x.shape} (H and W must be > 0)"
            )
        if self._fixed_hw is not None:
            axes = (2, 3) if self.spec.layout == "NCHW" else (1, 2)
            got = tuple(x.shape[a] for a in axes)
            if got != self._fixed_hw:
                fh, fw = self._fixed_hw
                raise EdgegenError(
                    f"{self.path} takes only {fh}x{fw} inputs (its input shape is fixed), "
                    f"got {got[0]}x{got[1]}"
                )
        if self._single and x.shape[0] > 1:
            return np.concatenate([self.infer(x[k : k + 1]) for k in range(x.shape[0])])
        if self._bindings is not None:
            out = self._bindings.get(x.shape, self._output_shape(x.shape))(x)
        else:
            with self._call() as run_options:
                try:
                    out = self._session.run(
                        [self._output_name], {self._input_name: x}, run_options
                    )[0]
                except Exception as exc:  # onnxruntime's error types: all mean this run failed
                    raise self._run_error(exc, x.shape) from None
        return np.asarray(out, dtype=np.float32)

    def cancel(self) -> int:
        """Stop every call in flight (from another thread, a signal handler's helper, a
        timeout): each raises :class:`Cancelled` within one layer of the network. Returns how
        many calls were told. Calls through IO binding (the GPU default) run to their end."""
        with self._active_lock:
            for run_options in self._active:
                run_options.terminate = True
            return len(self._active)

    @contextlib.contextmanager
    def _call(self) -> Iterator[Any]:
        """The onnxruntime RunOptions of this thread's outermost call (an image's tiles share
        one), registered so that :meth:`cancel` can reach it."""
        current = getattr(self._local, "run_options", None)
        if current is not None:
            if current.terminate:  # cancelled between two tiles
                raise Cancelled(f"{self.path}: cancelled")
            yield current
            return
        import onnxruntime as ort

        run_options = ort.RunOptions()
        with self._active_lock:
            self._active.add(run_options)
        self._local.run_options = run_options
        try:
            yield run_options
        finally:
            self._local.run_options = None
            with self._active_lock:
                self._active.discard(run_options)

    def _run_error(self, exc: Exception, shape: tuple[int, ...]) -> EdgegenError:
        """onnxruntime's exception as one line: cancelled, out of memory, or what failed."""
        text = str(exc).strip()
        first = _onnxruntime_reason(text.splitlines()[0] if text else type(exc).__name__)
        if "terminate flag" in text:
            return Cancelled(f"{self.path}: cancelled")
        if "allocate" in text.lower() or "bad_alloc" in text:
            size = re.search(r"buffer of size (\d+)", text)
            need = f": a buffer of {int(size.group(1)) / 2**30:.1f} GiB failed" if size else ""
            return EdgegenError(
                f"out of memory running {self.path} on a {'x'.join(map(str, shape))} "
                f"input{need}; use a smaller --tile"
            )
        return EdgegenError(f"{self.path} failed on a {'x'.join(map(str, shape))} input: {first}")

    def bound(self, shape: Sequence[int]) -> BoundRun:
        """The reusable device buffers for a batch of ``shape`` (the model's own layout), made
        (and, with ``cuda_graph``, captured) on first use: write ``.input`` in place, call
        ``.run()``, read ``.output``; the data can stay on the GPU between calls."""
        if self._bindings is None:
            raise EdgegenError("bound() needs io_binding (on by default for CUDA and TensorRT)")
        dims = tuple(int(d) for d in shape)
        if len(dims) != 4:
            raise EdgegenError(f"bound() takes a 4-d batch shape, got {dims}")
        return self._bindings.get(dims, self._output_shape(dims))

    def warmup(self, height: int, width: int, batch: int = 1) -> None:
        """Run once at this input size so that the first real call does not pay for memory
        allocation, cuDNN's algorithm search or CUDA graph capture."""
        pm = self.spec.pad_multiple
        h, w = -(-height // pm) * pm, -(-width // pm) * pm
        shape = (
            (batch, self.spec.in_channels, h, w)
            if self.spec.layout == "NCHW"
            else (batch, h, w, self.spec.in_channels)
        )
        self.infer(np.full(shape, 0.5, dtype=self._input_dtype))

    def _output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        s, c = self.spec.scale, self.spec.out_channels
        if self.spec.layout == "NCHW":
            n, _, h, w = in_shape
            return (n, c, h * s, w * s)
        n, h, w, _ = in_shape
        return (n, h * s, w * s, c)

    # -- images --------------------------------------------------------------------------------

    @_memory_guard
    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Run one image: uint8/uint16 (full range) or float32/float64 in [0, 1]; HW (gray), HWC
        with 1, 3 or 4 (RGBA: alpha carried through) channels. Returns the same dtype and layout
        (float inputs give float32), ``scale`` times larger."""
        prep = self._prepare(image)
        h, w = prep.color.shape[:2]
        tile = self._tile_for(h, w)
        if tile:
            pm = self.spec.pad_multiple
            margin = default_margin(self.spec.receptive_field, self.overlap)
            out = run_tiled(
                prep.color,
                self._run_hwc,
                self.spec.out_channels,
                self.spec.scale,
                tile,
                self.overlap,
                margin,
                align=pm,  # tiles start where the whole image's blocks start
            )
        else:
            out = self._run_hwc(prep.color)
        return self._finish(out, prep)

    @_memory_guard
    def run_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run several images; same-size, same-kind small images go through as one batch."""
        images = list(images)
        if not images:
            return []
        preps = [self._prepare(im) for im in images]
        first = preps[0]
        same = all(p.color.shape == first.color.shape and p.dtype == first.dtype for p in preps[1:])
        if len(preps) == 1 or not same or self._tile_for(*first.color.shape[:2]):
            return [self(im) for im in images]
        batch = np.concatenate([self._to_model(p.color) for p in preps])
        outs = from_model(self.spec, self._run_padded(batch))
        return [self._finish(o, p) for o, p in zip(outs, preps, strict=True)]

    def verify(
        self, golden: str | Path | None = None, *, require_manifest: bool = True
    ) -> VerifyReport:
        """Compare this model on this provider with its golden samples (``model.<p>.golden.npz``
        beside it), after checking their sha256 against the model's manifest; the report is
        truthy when every tolerance is met. ``require_manifest=False`` verifies a model that
        has no manifest, and the report notes that its samples were not vouched for."""
        from .golden import trusted_golden, verify_golden

        samples, note = trusted_golden(
            self.path, Path(golden) if golden else None, require_manifest
        )
        report = verify_golden(samples, self.infer, self.spec, self.path, self.providers)
        if note is not None:
            report.notes.append(note)
        return report

    # -- helpers (no state is written on self: calls may run concurrently) ---------------------

    def _tile_for(self, h: int, w: int) -> int:
        if self.tile is None:
            # Tiles change a global-field model's output: it runs whole unless asked to tile.
            big = h * w > AUTO_TILE_PIXELS and not self.spec.global_field
            return AUTO_TILE if big else 0
        if self.tile and (h > self.tile or w > self.tile):
            if self.spec.global_field:
                self._warn_global_tiling()
            return self.tile
        return 0

    def _warn_global_tiling(self) -> None:
        if self._warned_tiling:
            return
        self._warned_tiling = True
        measured = self.spec.tiled_max_lsb
        size = f" (export measured up to {measured:g} LSB)" if measured is not None else ""
        warnings.warn(
            f"{self.path.name}: every output pixel depends on the whole image (global receptive "
            f"field), so tiles change the output{size}; tile=0 runs whole images",
            TilingWarning,
            stacklevel=3,
        )

    def _prepare(self, image: np.ndarray) -> _Prepared:
        arr = np.asarray(image)
        if arr.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
            raise EdgegenError(
                f"images must be uint8, uint16, float32 or float64 arrays, got {arr.dtype}"
            )
        two_d = arr.ndim == 2
        if two_d:
            arr = arr[:, :, None]
        if arr.ndim != 3:
            raise EdgegenError(f"an image must be HW or HWC, got shape {arr.shape}")
        h, w, c = arr.shape
        if h == 0 or w == 0:
            raise EdgegenError(f"zero-size image: {h}x{w}")
        if arr.dtype.kind == "f" and arr.size:  # (a 0-channel image is refused below)
            if not np.isfinite(arr).all():
                raise EdgegenError("a float image must be finite: it holds NaN or inf values")
            low, high = float(arr.min()), float(arr.max())
            if low < FLOAT_LIMITS[0] or high > FLOAT_LIMITS[1]:
                raise EdgegenError(
                    f"a float image must hold values in [0, 1] (noise may take them to "
                    f"[{FLOAT_LIMITS[0]:g}, {FLOAT_LIMITS[1]:g}]); got [{low:.4g}, {high:.4g}]"
                )
        if c not in (1, 3, 4):
            raise EdgegenError(
                f"an image must have 1 (gray), 3 (RGB) or 4 (RGBA) channels, got {c}"
            )
        alpha = arr[:, :, 3] if c == 4 else None
        color = arr[:, :, :3] if c == 4 else arr
        repeated = False
        if color.shape[2] == 1 and self.spec.in_channels == 3:
            repeated = True
        elif color.shape[2] == 3 and self.spec.in_channels == 1:
            raise EdgegenError("this model takes gray images; convert the RGB image to gray first")
        return _Prepared(color, alpha, arr.dtype, two_d, repeated)

    def _to_model(self, color: np.ndarray) -> np.ndarray:
        """HWC crop in the caller's dtype -> NCHW float32 in the model's range and colour order."""
        x = to_unit(color)
        if x.shape[2] == 1 and self.spec.in_channels == 3:
            x = np.repeat(x, 3, axis=2)
        return to_model(self.spec, x)

    def _run_padded(self, x: np.ndarray) -> np.ndarray:
        """NCHW float32 -> model output, padded to the pad multiple and cropped back."""
        h, w = x.shape[2:]
        x = pad_to_multiple(x, self.spec.pad_multiple)
        if self.spec.layout == "NHWC":
            y = self.infer(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        else:
            y = self.infer(x)
        expected = output_shape(self.spec, x.shape)
        if y.shape != expected:
            raise ModelError(
                f"{self.path}: output shape {y.shape} does not match the spec ({expected})"
            )
        if not np.isfinite(y).all():  # written as pixels, NaN would be black: never silent
            bad = int(np.size(y) - np.count_nonzero(np.isfinite(y)))
            raise EdgegenError(f"{self.path} output {bad} NaN or inf value(s); nothing written")
        s = self.spec.scale
        return y[:, :, : h * s, : w * s]

    def _run_hwc(self, color: np.ndarray) -> np.ndarray:
        return np.asarray(from_model(self.spec, self._run_padded(self._to_model(color)))[0])

    def _matched(self, out: np.ndarray, color: np.ndarray) -> np.ndarray:
        """Mean matching, registered as a call so that :meth:`cancel` (a timeout, Ctrl-C)
        stops it between two strips of rows as it stops the network between two layers."""
        from .means import match_means

        with self._call() as run_options:

            def check() -> None:
                if run_options.terminate:
                    raise Cancelled(f"{self.path}: cancelled")

            return match_means(color, out, inplace=True, check=check)

    def _finish(self, out: np.ndarray, prep: _Prepared) -> np.ndarray:
        """Float32 HWC output in [0, 1] -> the caller's dtype and layout, alpha re-attached."""
        from .images import resize

        if prep.gray_repeated and out.shape[2] == 3:
            out = out.mean(axis=2, keepdims=True)
        if self.match_means:
            out = self._matched(out, prep.color)
        out = np.clip(out, 0.0, 1.0)
        if prep.dtype == np.uint8:
            result = np.rint(out * 255.0).astype(np.uint8)
        elif prep.dtype == np.uint16:
            result = np.rint(out * 65535.0).astype(np.uint16)
        else:
            result = out.astype(np.float32, copy=False)
        if prep.alpha is not None:
            alpha = resize(prep.alpha, self.spec.scale, "bilinear")
            alpha = alpha.astype(result.dtype) if result.dtype == np.float32 else alpha
            result = np.concatenate([result, alpha[:, :, None]], axis=2)
        elif prep.two_d and result.shape[2] == 1:
            result = result[:, :, 0]
        return np.ascontiguousarray(result)


# Float images are in [0, 1]; a noisy one legitimately strays outside (the denoisers train on
# unclipped noise), so only values a whole range away are refused. Far larger finite values
# (1e37, say) overflow the convolutions to inf and NaN, and would come back as garbage.
FLOAT_LIMITS = (-1.0, 2.0)


def _onnxruntime_reason(line: str) -> str:
    """onnxruntime's run-time error without its status code and C++ source location:
    "its Reshape node 'r' failed: The input tensor cannot be reshaped ..."."""
    line = re.sub(r"^\[ONNXRuntimeError\] : \d+ : [A-Z_]+ : ", "", line)
    node = re.match(r".*?running (\w+) node\. Name:'([^']*)' Status Message: (.*)", line)
    if node is None:
        return line
    op, name, message = node.groups()
    message = message.split(" was false. ", 1)[-1]  # after the failed C++ check, the reason
    return f"its {op} node {name!r} failed: {message}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
