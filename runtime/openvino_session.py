"""An ONNX file compiled by OpenVINO, behind the part of onnxruntime's session interface that
:class:`~edgegen.runtime.generator.Generator` uses (``pip install 'edgegen[openvino]'``).

OpenVINO reads the same ONNX file and compiles it for its device at an *inference precision*:
``f32`` computes in float32 (exact to rounding), ``bf16`` and ``f16`` let the plugin run the
float layers in a 16-bit format where the device has it (OpenVINO's own CPU default is bf16 on
CPUs with AMX or AVX512_BF16); the int8 QDQ layers of an int8 export run as int8 at every
setting. edgegen asks for f32 unless told otherwise, so that the default computes what the export
verified; ``openvino:bf16`` is the faster setting, to be verified and compared like any other
variant. A precision the device cannot run is an error, never a silent f32.

onnxruntime's own OpenVINO execution provider (the ``onnxruntime-ep-openvino`` plugin) is the
other way to the same compiler: where the plugin is installed and lists a device of the kind
asked for, :func:`openvino_ep` picks it and the session is onnxruntime's, with that provider;
elsewhere (the plugin missing, listing no device, as on AMD CPUs, or asked for bf16, which it
does not offer) OpenVINO's own API compiles the file, and :attr:`EPChoice.why` says why.

openvino is imported here only, when such a session is opened: ``import edgegen.runtime``
still loads numpy and onnxruntime alone.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EdgegenError

PRECISIONS = ("f32", "bf16", "f16")  # OpenVINO's INFERENCE_PRECISION_HINT values
# The device capability each 16-bit precision needs (OPTIMIZATION_CAPABILITIES).
_NEEDS = {"bf16": "BF16", "f16": "FP16"}
DEVICES = {"cpu": "CPU", "gpu": "GPU"}


def parse_runtime(runtime: str) -> tuple[str, str | None]:
    """``"openvino:bf16"`` -> ``("openvino", "bf16")``; ``"onnxruntime"`` -> its name, None."""
    name, _, option = runtime.strip().lower().partition(":")
    if name in ("web", "onnx-reference"):
        raise EdgegenError(
            f"runtime {name} is for compare, bench and verify (--runtimes {name}); a Generator "
            "runs on onnxruntime or openvino"
            + (", and `edgegen web` packs models for the browser" if name == "web" else "")
        )
    if name not in ("onnxruntime", "openvino"):
        raise EdgegenError(f"unknown runtime {name!r}; choose from onnxruntime, openvino")
    if name == "onnxruntime" and option:
        raise EdgegenError(f"runtime onnxruntime takes no option (got {runtime!r})")
    return name, option or None


EP_NAME = "OpenVINOExecutionProvider"
# The plugin's "precision" option for each inference precision; it offers no bf16.
_EP_PRECISION = {"f32": "FP32", "f16": "FP16"}
_ep_lock = threading.Lock()
_ep_loaded: dict[str, str] = {}  # "error" -> why the plugin did not register ("" when it did)


@dataclass(frozen=True)
class EPChoice:
    """onnxruntime's OpenVINO EP devices for a request, or none and why not."""

    devices: list[Any]  # onnxruntime OrtEpDevice objects; empty: use OpenVINO's own API
    why: str  # why the plugin is not used ("" when it is)


def openvino_ep(device: str, precision: str) -> EPChoice:
    """The plugin's devices of kind ``device`` (cpu, gpu) for ``precision``, registering the
    plugin with onnxruntime once per process; none, with the reason, where it cannot serve."""
    if precision not in _EP_PRECISION:
        return EPChoice([], f"onnxruntime's OpenVINO EP offers no {precision} precision")
    try:
        import onnxruntime_ep_openvino as plugin  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return EPChoice([], "onnxruntime's OpenVINO EP plugin (onnxruntime-ep-openvino) is not "
                        "installed")  # fmt: skip
    import onnxruntime as ort

    if not hasattr(ort, "register_execution_provider_library"):
        return EPChoice([], f"onnxruntime {ort.__version__} cannot load EP plugins")
    with _ep_lock:
        if "error" not in _ep_loaded:
            try:
                ort.register_execution_provider_library(EP_NAME, plugin.get_library_path())
                _ep_loaded["error"] = ""
            except Exception as exc:  # a C++ error from the plugin's loader, any type
                _ep_loaded["error"] = _first_line(exc)
    if _ep_loaded["error"]:
        return EPChoice([], f"onnxruntime's OpenVINO EP plugin did not load: {_ep_loaded['error']}")
    kind = DEVICES.get(device, device.upper())
    listed = [d for d in ort.get_ep_devices() if d.ep_name == EP_NAME]
    found = [d for d in listed if str(d.device.type).rsplit(".", 1)[-1] == kind]
    if not found:
        kinds = sorted({str(d.device.type).rsplit(".", 1)[-1] for d in listed}) or ["none"]
        return EPChoice(
            [], f"onnxruntime's OpenVINO EP plugin lists no {kind} device here ({', '.join(kinds)})"
        )
    return EPChoice(found, "")


def open_ep_session(path: Path, choice: EPChoice, precision: str, threads: int | None) -> Any:
    """An onnxruntime session of ``path`` on the plugin's devices at ``precision``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    settings = {"precision": _EP_PRECISION[precision]}
    if threads is not None:
        settings["num_of_threads"] = str(int(threads))
    options.add_provider_for_devices(choice.devices, settings)
    try:
        session = ort.InferenceSession(str(path), sess_options=options)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise EdgegenError(
            f"onnxruntime's OpenVINO EP cannot open {path}: {_first_line(exc)}"
        ) from None
    if session.get_providers()[0] != EP_NAME:
        raise EdgegenError(f"onnxruntime's OpenVINO EP took no part of {path}")
    return session


def import_openvino() -> Any:
    try:
        import openvino
    except ImportError:
        raise EdgegenError(
            "the openvino runtime is not installed: pip install 'edgegen[openvino]'"
        ) from None
    return openvino


@dataclass(frozen=True)
class _Arg:
    """A model input or output as onnxruntime describes it (name, shape, element type)."""

    name: str
    shape: list[Any]
    type: str


class OpenVINOSession:
    """``get_inputs()``, ``get_outputs()`` and ``run()`` of onnxruntime's InferenceSession, on
    a model compiled by OpenVINO for ``device`` at ``precision`` with ``threads`` threads (None:
    OpenVINO's own choice, every core). Thread-safe: each thread gets its own infer request."""

    def __init__(
        self, path: Path, device: str = "cpu", precision: str = "f32", threads: int | None = None
    ) -> None:
        ov = import_openvino()
        key = device.strip().lower()
        if key == "auto":
            key = "cpu"
        if key not in DEVICES:
            raise EdgegenError(f"openvino: unknown device {device!r}; choose {', '.join(DEVICES)}")
        core = ov.Core()
        target = DEVICES[key]
        if target not in core.available_devices:
            listed = ", ".join(core.available_devices) or "none"
            raise EdgegenError(
                f"openvino: no {target} device here (OpenVINO {ov.__version__} lists {listed})"
            )
        if precision not in PRECISIONS:
            raise EdgegenError(
                f"openvino: unknown inference precision {precision!r}; choose "
                f"{', '.join(PRECISIONS)}"
            )
        offered = {str(c) for c in core.get_property(target, "OPTIMIZATION_CAPABILITIES")}
        if precision in _NEEDS and _NEEDS[precision] not in offered:
            raise EdgegenError(
                f"openvino:{precision}: this {target} cannot compute in {precision} (it offers "
                f"{', '.join(sorted(offered))}); use openvino (f32)"
            )
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision}
        config["PERFORMANCE_HINT"] = "LATENCY"
        if threads is not None and target == "CPU":
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self._compiled = core.compile_model(core.read_model(str(path)), target, config)
        except RuntimeError as exc:
            raise EdgegenError(f"openvino cannot compile {path}: {_first_line(exc)}") from None
        self.version = str(ov.__version__).split("-")[0]
        self.device = target
        self._local = threading.local()

    @property
    def computes_in(self) -> str:
        """The inference precision the compiled model reports (what runs, not what was asked)."""
        hint = self._compiled.get_property("INFERENCE_PRECISION_HINT")
        name = getattr(hint, "get_type_name", None)
        return str(name() if callable(name) else hint)

    def get_providers(self) -> list[str]:
        return [f"OpenVINO {self.device} ({self.computes_in})"]

    def get_inputs(self) -> list[_Arg]:
        return [_arg(p) for p in self._compiled.inputs]

    def get_outputs(self) -> list[_Arg]:
        return [_arg(p) for p in self._compiled.outputs]

    def run(
        self, names: list[str], feeds: dict[str, np.ndarray], run_options: Any = None
    ) -> list[Any]:
        """Run once: ``[output]`` for ``{input: x}``. A cancelled call (``run_options`` with
        ``terminate`` set, as :meth:`Generator.cancel` leaves it) does not start; OpenVINO
        offers no way into a running one here."""
        if run_options is not None and getattr(run_options, "terminate", False):
            raise RuntimeError("Exiting due to terminate flag being set to true.")
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        (x,) = feeds.values()
        result = request.infer({0: x})
        return [np.asarray(result[self._compiled.output(0)]) for _ in names]


def _arg(port: Any) -> _Arg:
    shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
    element = str(port.get_element_type().get_type_name())
    kinds = {"f32": "tensor(float)", "f16": "tensor(float16)", "f64": "tensor(double)"}
    return _Arg(port.get_any_name(), shape, kinds.get(element, f"tensor({element})"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
