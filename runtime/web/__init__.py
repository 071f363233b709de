"""The web target: exported models packed with onnxruntime-web into a static page and an ES
module (``edgegen.mjs``) that run them in a browser or in Node, and a local server for the page.

:func:`pack` copies each model with its manifest and golden samples (the files the Python
runtime reads, unchanged: the page checks their sha256 against the manifest, as
:meth:`Generator.verify` does), onnxruntime-web's WASM build, ``edgegen.mjs``, the page
(``index.html``, ``app.mjs``) and an index, ``edgegen-web.json``. Nothing in the page reaches
another host. :func:`find_ort_web` finds an installed onnxruntime-web (npm); :func:`make_server`
serves a folder with the headers that make a page cross-origin isolated, which WASM threads
need.

Standard library only: this module runs where the runtime does, and Node and npm are needed
only to install onnxruntime-web and, for the ``web`` runner, to run it.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgegenError
from ..files import TEMP_MARK, atomic_write_text, check_file
from ..manifest import check_manifest, manifest_path, read_manifest

ASSETS = Path(__file__).resolve().parent
FORMAT = "edgegen-web/1"
ORT_PACKAGE = "onnxruntime-web"
# The WASM build of onnxruntime-web (no WebGPU): its module, its loader and its binary, which
# has SIMD and threads (threads run only where the page is cross-origin isolated).
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
PAGE_FILES = ("index.html", "app.mjs", "edgegen.mjs")
ENV_ORT_WEB = "EDGEGEN_ORT_WEB"
INSTALL_HINT = (
    f"run `npm install {ORT_PACKAGE}` in this folder (or with -g), or set {ENV_ORT_WEB} to its "
    "folder (node_modules/onnxruntime-web)"
)


@dataclass(frozen=True)
class OrtWeb:
    """An installed onnxruntime-web: its package folder and version."""

    root: Path
    version: str

    @property
    def dist(self) -> Path:
        return self.root / "dist"

    @property
    def node_entry(self) -> Path:
        """The build Node imports (package.json's "node" export)."""
        return self.dist / "ort.node.min.mjs"


def _package(folder: Path) -> OrtWeb | None:
    meta = folder / "package.json"
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("name") != ORT_PACKAGE:
        return None
    return OrtWeb(folder.resolve(), str(data.get("version", "?")))


def find_ort_web(explicit: str | Path | None = None) -> OrtWeb:
    """onnxruntime-web's package folder: ``explicit``, else $EDGEGEN_ORT_WEB, else
    node_modules/onnxruntime-web in the working folder or a parent, beside edgegen's source
    (a checkout's ``npm ci``), or npm's global root. One line naming what to do when none."""
    given = explicit if explicit is not None else os.environ.get(ENV_ORT_WEB)
    if given:
        found = _package(Path(given))
        if found is None:
            raise EdgegenError(f"{given} is not onnxruntime-web's package folder (no package.json "
                               f"naming {ORT_PACKAGE})")  # fmt: skip
        return found
    places = [Path.cwd(), *Path.cwd().parents, ASSETS.parents[1], *ASSETS.parents[2:]]
    for place in places:
        found = _package(place / "node_modules" / ORT_PACKAGE)
        if found is not None:
            return found
    npm = shutil.which("npm")
    if npm:
        try:
            root = subprocess.run(
                [npm, "root", "-g"], capture_output=True, text=True, timeout=30, check=False
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            root = ""
        found = _package(Path(root) / ORT_PACKAGE) if root else None
        if found is not None:
            return found
    raise EdgegenError(f"{ORT_PACKAGE} is not installed: {INSTALL_HINT}")


def find_node() -> str:
    node = shutil.which("node")
    if node is None:
        raise EdgegenError("the web runtime needs Node.js 18 or later (`node` is not on PATH)")
    return node


@dataclass(frozen=True)
class PackedModel:
    """One model in a bundle: its manifest's path in the bundle, and what the page lists."""

    manifest: str
    name: str
    precision: str
    task: str
    scale: int


def _entry(model: Path, folder: str) -> tuple[PackedModel, list[Path]]:
    """A model's files (ONNX, manifest, golden samples), checked as the runtime checks them."""
    if model.is_dir():
        raise EdgegenError(f"model {model} is a folder, not an ONNX file")
    check_file(model, "model")
    manifest = manifest_path(model)
    if not manifest.is_file():
        raise EdgegenError(
            f"{model} has no manifest ({manifest.name}): the page checks every model and its "
            "golden samples against the manifest export wrote"
        )
    check_manifest(model)  # the file is the one export verified
    record = read_manifest(manifest)
    golden = record.get("golden")
    if not isinstance(golden, dict) or not isinstance(golden.get("file"), str):
        raise EdgegenError(f"{manifest} names no golden samples: re-export the model")
    golden_file = model.parent / str(golden["file"])
    check_file(golden_file, "golden samples")
    spec = record.get("spec")
    if not isinstance(spec, dict):
        raise EdgegenError(f"{manifest} holds no spec: re-export the model")
    precision = str(record.get("precision", spec.get("precision", "?")))
    packed = PackedModel(
        manifest=f"models/{folder}/{manifest.name}",
        name=f"{folder} {precision}",
        precision=precision,
        task=str(spec.get("task", "?")),
        scale=int(spec.get("scale", 1)),
    )
    return packed, [model, manifest, golden_file]


def check_models(models: Sequence[Path]) -> None:
    """Refuse, with one line, a model :func:`pack` cannot pack (no manifest, no golden samples,
    a file that changed after export), before anything else is done."""
    for model in models:
        _entry(Path(model), "check")


def pack(
    models: Sequence[Path], out: Path, ort_web: OrtWeb, *, title: str = "edgegen"
) -> list[PackedModel]:
    """Write the page for ``models`` (ONNX files exported by edgegen) to ``out``: staged in a
    temporary folder beside it and renamed into place, so a failed pack leaves ``out`` as it was.
    Models from one folder share a subfolder named after it (``models/denoise-blind/``)."""
    if not models:
        raise EdgegenError("name at least one model to pack")
    check_page_folder(Path(out))
    missing = [name for name in ORT_FILES if not (ort_web.dist / name).is_file()]
    if missing:
        raise EdgegenError(
            f"{ort_web.root} lacks {', '.join(missing)}: onnxruntime-web {ort_web.version} is "
            "not a build this page can use (1.19 or later)"
        )
    folders: dict[Path, str] = {}
    entries: list[tuple[PackedModel, list[Path], str]] = []
    for model in models:
        source = Path(model).resolve().parent
        if source not in folders:
            name = source.name or "model"
            taken = set(folders.values())
            folders[source] = name if name not in taken else f"{name}-{len(taken) + 1}"
        packed, files = _entry(Path(model), folders[source])
        entries.append((packed, files, folders[source]))
    if len({p.manifest for p, _, _ in entries}) != len(entries):
        raise EdgegenError("a model is named twice")
    index = {
        "format": FORMAT,
        "title": title,
        "onnxruntime_web": {"version": ort_web.version, "module": f"ort/{ORT_FILES[0]}"},
        "models": [vars(p) for p, _, _ in entries],
    }
    with _staged(Path(out)) as stage:
        for name in PAGE_FILES:
            shutil.copyfile(ASSETS / name, stage / name)
        (stage / "ort").mkdir()
        for name in ORT_FILES:
            shutil.copyfile(ort_web.dist / name, stage / "ort" / name)
        for _, files, folder in entries:
            target = stage / "models" / folder
            target.mkdir(parents=True, exist_ok=True)
            for file in files:
                shutil.copyfile(file, target / file.name)
        atomic_write_text(stage / "edgegen-web.json", json.dumps(index, indent=2) + "\n")
    return [p for p, _, _ in entries]


def check_page_folder(out: Path) -> None:
    """Refuse an output folder that :func:`pack` must not replace: a file, or a folder that
    holds anything but an earlier page."""
    if out.exists() and not out.is_dir():
        raise EdgegenError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "edgegen-web.json").is_file():
        raise EdgegenError(
            f"{out} holds files that are not an edgegen page; choose a new or empty folder"
        )


@contextlib.contextmanager
def _staged(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out`` (named as edgegen's temporaries are) that replaces it
    when the block succeeds and is removed when it fails. Only an empty folder or an earlier
    page (it holds ``edgegen-web.json``) is replaced: never a folder of someone's files."""
    check_page_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}{TEMP_MARK}", suffix=".tmp", dir=out.parent))
    os.chmod(stage, 0o777 & ~_umask())  # served as it is: readable as a folder normally is
    try:
        yield stage
        # A folder cannot be swapped atomically (no RENAME_EXCHANGE here): the old page is
        # moved aside, the new one renamed into place, then the old one removed.
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}{TEMP_MARK}", suffix=".tmp",
                                        dir=out.parent))  # fmt: skip
            old.rmdir()
            os.replace(out, old)
        os.replace(stage, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class BundleHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with the headers a cross-origin isolated page needs (WASM threads use
    SharedArrayBuffer), and the MIME types of ES modules and WebAssembly."""

    isolate = True
    extensions_map = {  # noqa: RUF012 - the base class's attribute, extended
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".js": "text/javascript",
        ".wasm": "application/wasm",
        ".json": "application/json",
    }

    def end_headers(self) -> None:
        if self.isolate:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
            self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # a request line per file would drown the one line that matters


def make_server(
    root: Path,
    port: int = 8000,
    host: str = "127.0.0.1",
    *,
    isolate: bool = True,
    handler: type[BundleHandler] = BundleHandler,
) -> http.server.ThreadingHTTPServer:
    """A server for the folder ``root`` (port 0: any free port); ``isolate`` sends the
    cross-origin isolation headers."""
    if not Path(root).is_dir():
        raise EdgegenError(f"{root} is not a folder")
    cls = type("Handler", (handler,), {"isolate": isolate})
    bound = functools.partial(cls, directory=str(root))
    try:
        return http.server.ThreadingHTTPServer((host, port), bound)
    except OSError as exc:
        raise EdgegenError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
