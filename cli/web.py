"""``edgegen web`` and ``edgegen serve``: exported models as a static page on onnxruntime-web."""

from __future__ import annotations

from pathlib import Path

import click

from edgegen.runtime.errors import EdgegenError


def model_files(names: tuple[str, ...]) -> list[Path]:
    """ONNX files, export folders (each model.*.onnx with a manifest in it) or shipped model
    names (``denoise-blind``, ``sr2:fp32``) -> the ONNX files, in order."""
    from edgegen.runtime.manifest import manifest_path
    from edgegen.runtime.zoo import MODEL_SUFFIXES, resolve

    found: list[Path] = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            inside = sorted(p for p in path.glob("*.onnx") if manifest_path(p).is_file())
            if not inside:
                raise EdgegenError(f"{path} holds no exported model (model.*.onnx with a manifest)")
            found += inside
        elif path.suffix.lower() in MODEL_SUFFIXES or path.exists():
            found.append(path)
        else:
            found.append(resolve(name))
    return found


@click.command("web")
@click.argument("models", nargs=-1, required=True)
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder to write the page to (new, empty, or an earlier page: it is replaced whole).",
)
@click.option(
    "--ort-web",
    type=click.Path(path_type=Path),
    help="onnxruntime-web's package folder (node_modules/onnxruntime-web); default: "
    "$EDGEGEN_ORT_WEB, then node_modules here or above, then npm's global folder.",
)
@click.option("--title", default="edgegen", show_default=True, help="The page's title.")
def web(models: tuple[str, ...], out: Path, ort_web: Path | None, title: str) -> int:
    """Pack MODELS into a static web page that runs them with onnxruntime-web (WASM).

    MODELS are ONNX files exported by edgegen, export folders, or shipped model names
    (denoise-blind, sr2:fp32). The folder holds the page (index.html, app.mjs), the ES module
    edgegen.mjs for your own pages and Node apps, onnxruntime-web's WASM build, and each model
    with its manifest and golden samples. The page checks every model against its golden
    samples on the visitor's device before it runs a photo, and reaches no other host.

    Serve it with `edgegen serve OUT` (or any server that sends the cross-origin isolation
    headers, which WASM threads need; without them it runs on one thread and says so).

    \b
    Exit codes:
      0  the page was written
      2  bad input: a model without manifest or golden samples, no onnxruntime-web, an
         output folder that holds other files
    """
    from edgegen.runtime.web import check_models, check_page_folder, find_ort_web, pack

    check_page_folder(out)
    files = model_files(models)
    check_models(files)
    ort = find_ort_web(ort_web)
    packed = pack(files, out, ort, title=title)
    for entry in packed:
        click.echo(f"{entry.name}: {entry.manifest}")
    click.echo(f"wrote {out} (onnxruntime-web {ort.version}); try it: edgegen serve {out}")
    return 0


@click.command("serve")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port (0: any free one).")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--isolation/--no-isolation",
    default=True,
    show_default=True,
    help="Send the cross-origin isolation headers (COOP/COEP) that WASM threads need.",
)
def serve(folder: Path, port: int, host: str, isolation: bool) -> int:
    """Serve FOLDER (a page written by `edgegen web`) over HTTP until Ctrl-C.

    \b
    Exit codes:
      0  stopped with Ctrl-C
      2  bad input: not a folder, the port is taken
    """
    from edgegen.runtime.web import make_server

    server = make_server(folder, port, host, isolate=isolation)
    bound_host, bound_port = server.server_address[:2]
    if isinstance(bound_host, bytes):
        bound_host = bound_host.decode()
    isolated = "cross-origin isolated" if isolation else "not isolated: one WASM thread"
    click.echo(f"serving {folder} at http://{bound_host}:{bound_port}/ ({isolated}); Ctrl-C stops")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
