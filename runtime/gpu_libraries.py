"""Whether a GPU provider's libraries load, and a message naming the ones that do not.

onnxruntime-gpu lists TensorRT and CUDA as available whether or not their libraries (libnvinfer,
libcudnn, ...) are installed, and a session asked for them then quietly runs on the CPU. So the
provider's own shared library is loaded first (``ctypes``), and the dynamic loader's message,
which names the first missing library, becomes one line that says what to install.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import re
import sys
from pathlib import Path

from .providers import CUDA, TENSORRT

log = logging.getLogger("edgegen.runtime")

_PROVIDER_LIBS = {CUDA: "onnxruntime_providers_cuda", TENSORRT: "onnxruntime_providers_tensorrt"}
_LIB_PATTERN = re.compile(r"(lib[\w.+-]+?\.so(?:\.\d+)*|[\w.+-]+\.dll)")
_preloaded = False


def preload_gpu_libraries() -> None:
    """Let onnxruntime find CUDA/cuDNN from pip's nvidia packages (or a CUDA torch already
    imported); its own messages go to the debug log instead of stdout."""
    global _preloaded
    if _preloaded:
        return
    _preloaded = True
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            preload()
    except Exception as exc:  # a missing directory or library: the probe below names it
        log.debug("onnxruntime.preload_dlls: %s", exc)
    if buffer.getvalue().strip():
        log.debug("onnxruntime.preload_dlls: %s", buffer.getvalue().strip())


def provider_library_error(provider: str) -> str | None:
    """Why ``provider``'s onnxruntime library cannot load (the dynamic loader's message, which
    names the first missing library), or None if it loads or is not a separate library."""
    import onnxruntime as ort

    stem = _PROVIDER_LIBS.get(provider)
    if stem is None:
        return None
    capi = Path(ort.__file__).parent / "capi"
    name = f"{stem}.dll" if sys.platform == "win32" else f"lib{stem}.so"
    path = capi / name
    if not path.is_file():
        return None  # nothing to probe: the session itself will say
    return library_error(path)


def library_error(path: Path) -> str | None:
    """The loader's message when ``path`` or a library it needs cannot be found; None when it
    loads, and also for other failures (an unresolved symbol, say), which onnxruntime's own
    loading may not meet: the session then says whether the provider runs."""
    try:
        ctypes.CDLL(str(path))
    except OSError as exc:
        text = str(exc)
        missing = "cannot open shared object file" in text or "not a valid Win32" in text
        return text if missing else None
    return None


def missing_libraries(reason: str) -> str:
    """The libraries named in a loader message, first the one that failed."""
    names = [n for n in _LIB_PATTERN.findall(reason) if "onnxruntime_providers" not in n]
    unique = list(dict.fromkeys(names))
    if unique:
        return f"missing {', '.join(unique)}"
    return reason.strip().splitlines()[0] if reason.strip() else "library failed to load"


def library_message(provider: str, reason: str) -> str:
    """One line: which of ``provider``'s libraries are missing, and how to install them."""
    if provider == TENSORRT:
        hint = (
            "TensorRT's libraries (libnvinfer, libnvinfer_plugin, libnvonnxparser) must be "
            "installed and findable: pip install tensorrt, or add TensorRT's lib folder to "
            "LD_LIBRARY_PATH; or use device cuda"
        )
    else:
        hint = (
            "the CUDA and cuDNN libraries this onnxruntime-gpu was built for must be installed: "
            "pip install 'onnxruntime-gpu[cuda,cudnn]', or add their lib folders to "
            "LD_LIBRARY_PATH"
        )
    return f"{provider} cannot load: {missing_libraries(reason)}; {hint}"
