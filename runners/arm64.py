"""onnxruntime on ARM64, in the emulated Debian arm64 userland that `make check-arm64` builds.

The runner copies the model (with its manifest) into the root and starts, by chroot, the
root's Python on :mod:`edgegen.runners.arm64_server`, which runs it with an onnxruntime
``Generator`` built for aarch64 and answers batches over a pipe. It computes what an ARM64 CPU
computes (onnxruntime's ARM kernels: its fp16 model runs fp16 arithmetic, where x86 converts to
fp32), so it belongs in compare and verify; its speed is qemu's, not an ARM CPU's. It needs
root (chroot) and the root built by ``make check-arm64`` (cached in ``$EDGEGEN_ARM64_CACHE``,
default /var/cache/edgegen-arm64), with the aarch64 interpreter registered in binfmt_misc.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.manifest import manifest_path

from .base import RunnerInfo
from .pipe import PipeProcess, PipeRunner

VENV = "/opt/edgegen"  # the root's venv, which make check-arm64 fills
BINFMT_ENTRY = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
BUILD_HINT = "run `make check-arm64` once (as root) to build it"


def arm64_cache() -> Path:
    """Where the emulated root and its wheels are cached."""
    return Path(os.environ.get("EDGEGEN_ARM64_CACHE", "/var/cache/edgegen-arm64"))


def arm64_root() -> Path:
    """The emulated root, checked: built, enterable (root, binfmt), with edgegen installed."""
    root = arm64_cache() / "root"
    if not (root / VENV.lstrip("/") / "bin" / "python").exists():
        raise EdgegenError(f"runtime arm64 needs the emulated ARM64 root at {root}: {BUILD_HINT}")
    if os.geteuid() != 0:
        raise EdgegenError("runtime arm64 enters its emulated root with chroot: run as root")
    if not BINFMT_ENTRY.is_file() or "enabled" not in BINFMT_ENTRY.read_text():
        raise EdgegenError(
            f"runtime arm64: the aarch64 interpreter is not registered in binfmt_misc: {BUILD_HINT}"
        )
    return root


def runtime_package() -> Path:
    import edgegen.runtime

    return Path(edgegen.runtime.__file__).resolve().parent


class Arm64Runner(PipeRunner):
    """An ONNX file on onnxruntime for aarch64, in the emulated root; ``threads`` as natively."""

    def __init__(
        self,
        path: Path,
        device: str = "cpu",
        *,
        name: str | None = None,
        threads: int | None = None,
        **_onnxruntime_options: Any,
    ) -> None:
        if device not in ("cpu", "auto"):
            raise EdgegenError(f"runtime arm64 runs on the (emulated) CPU, not {device!r}")
        self._open_file(path, name)
        root = arm64_root()
        (root / "work").mkdir(exist_ok=True)
        self._stage = Path(tempfile.mkdtemp(prefix="runner-", dir=root / "work"))
        shutil.copyfile(self.path, self._stage / self.path.name)
        if manifest_path(self.path).is_file():
            shutil.copyfile(manifest_path(self.path), self._stage / manifest_path(self.path).name)
        inside = f"/{self._stage.relative_to(root)}/{self.path.name}"
        # This edgegen's runtime and runners go in beside the model, ahead of the root's own
        # install: the other end runs the same code as this one, whatever the root last got.
        package = self._stage / "pkg" / "edgegen"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        skip = shutil.ignore_patterns("__pycache__", "*.mjs", "*.html")
        for sub in (runtime_package(), Path(__file__).resolve().parent):
            shutil.copytree(sub, package / sub.name, ignore=skip)
        chroot = shutil.which("chroot") or "/usr/sbin/chroot"
        env = {
            "PATH": f"{VENV}/bin:/usr/bin:/bin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "PYTHONPATH": f"/{self._stage.relative_to(root)}/pkg",
        }
        cmd = [chroot, str(root), f"{VENV}/bin/python", "-m", "edgegen.runners.arm64_server"]
        try:
            self.pipe = PipeProcess([*cmd, inside, str(threads or 0)], "runtime arm64", env=env)
            reply, _ = self.pipe.call({"load": inside})
        except EdgegenError:
            self.close()
            raise
        info = reply["info"]
        self._version = str(info.get("onnxruntime", "?"))
        self._providers = [f"{p} (aarch64, emulated)" for p in info.get("providers", [])]

    def cleanup(self) -> None:
        stage = getattr(self, "_stage", None)
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)

    @property
    def info(self) -> RunnerInfo:
        return RunnerInfo("arm64", self._version, "cpu", self._providers, self.spec.precision)
