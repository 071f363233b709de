"""Running a model over image files: inputs found, outputs planned, written safely, resumable.

``edgegen run`` is this module with a command line around it; an application (or a cluster
job) that processes folders of photos can use it the same way::

    gen = Generator("model.int8.onnx")
    files = collect_inputs(["photos/"])
    pairs = pending(files, plan_outputs(files, out), overwrite=False)
    failures = run_files(gen, pairs, batch=4)

Outputs are written to a temporary name and renamed, so an output that exists is complete: a
rerun after a crash skips the inputs whose output exists (:func:`pending`) and does the rest.
An input is never overwritten, and the output folder may not be (or lie inside) an input folder.
"""

from __future__ import annotations

import functools
import glob
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .errors import EdgegenError, ModelError
from .generator import Generator
from .images import IMAGE_SUFFIXES, read_image_profile, write_image

Pair = tuple[Path, Path]  # (input image, output file)
Warn = Callable[[str], None]


def collect_inputs(inputs: Iterable[str], outdir: Path | None = None) -> list[Path]:
    """Files as given, image files in folders (recursive, sorted), glob matches; no duplicates.

    Glob matches inside ``outdir`` are left out: they are this run's outputs (``photos/**/*.png
    -o photos/out``), and taking them for inputs would break the rerun that resumes the work."""
    out = outdir.resolve() if outdir is not None else None
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            matches = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not matches:
                raise EdgegenError(f"input folder {path} holds no images")
        elif path.exists() or path.is_symlink():  # a broken link: named when it is read
            matches = [path]
        else:
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if out is not None:
                matches = [p for p in matches if not p.resolve().is_relative_to(out)]
            if not matches:
                raise EdgegenError(f"input {item}: no such file, and no files match it")
        found.extend(matches)
    unique: dict[Path, Path] = {}
    for p in found:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def check_outdir(outdir: Path, inputs: Iterable[str]) -> None:
    """Refuse an output folder that is a file, or is (or lies inside) an input folder: a rerun
    would take the outputs for inputs."""
    if outdir.exists() and not outdir.is_dir():
        raise EdgegenError(f"output folder {outdir} is a file")
    out = outdir.resolve()
    for item in inputs:
        folder = Path(item)
        if folder.is_dir() and out.is_relative_to(folder.resolve()):
            where = "is" if out == folder.resolve() else "lies inside"
            raise EdgegenError(
                f"output folder {outdir} {where} the input folder {folder}; choose another -o"
            )


def plan_outputs(files: Sequence[Path], outdir: Path) -> list[Path]:
    """``OUTDIR/<stem>.png`` for each input; refuse name clashes and overwriting an input."""
    resolved_inputs = {p.resolve() for p in files}
    taken: dict[Path, Path] = {}
    targets = []
    for src in files:
        dst = outdir / f"{src.stem}.png"
        key = dst.resolve()
        if key in resolved_inputs:
            raise EdgegenError(f"output {dst} would overwrite the input {src}; choose another -o")
        if key in taken:
            raise EdgegenError(f"inputs {taken[key]} and {src} would both be written to {dst}")
        if dst.is_dir():
            raise EdgegenError(f"output {dst} is a folder; move it or choose another -o")
        taken[key] = src
        targets.append(dst)
    return targets


def pending(files: Sequence[Path], targets: Sequence[Path], overwrite: bool) -> list[Pair]:
    """The (input, output) pairs still to do: all of them with ``overwrite``, else those whose
    output does not exist yet."""
    pairs = list(zip(files, targets, strict=True))
    return pairs if overwrite else [(src, dst) for src, dst in pairs if not dst.exists()]


def make_outdir(outdir: Path) -> None:
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgegenError(f"cannot create output folder {outdir}: {exc.strerror}") from None


def chunks(pairs: Sequence[Pair], batch: int) -> list[list[Pair]]:
    """``pairs`` in groups of ``batch``: what one onnxruntime call may take together."""
    return [list(pairs[i : i + batch]) for i in range(0, len(pairs), batch)]


def run_files(
    gen: Generator,
    pairs: Sequence[Pair],
    batch: int = 1,
    single: bool = False,
    warn: Warn | None = None,
    written: Callable[[Path, Path], None] | None = None,
    progress: Callable[[list[list[Pair]]], Iterator[list[Pair]]] = iter,
    timeout: float | None = None,
) -> list[str]:
    """Run ``gen`` on every input and write its output; returns the failures, one line each.

    Same-size images of a group of ``batch`` share one call. An image that cannot be read, or
    that the model fails on (its output NaN, out of memory, longer than ``timeout`` seconds),
    is skipped with ``warn`` and listed in the failures, unless ``single`` (the only input),
    when it is an error; a model that computes wrongly and a write that fails (a full disk)
    stop the run. ``written(src, dst)`` is told of each output; ``progress`` wraps the groups.

    Each call runs in a worker thread so that Ctrl-C (KeyboardInterrupt, in the main thread)
    stops the running inference within one layer (:meth:`Generator.cancel`) instead of after
    it; nothing is half-written, since outputs only ever appear by rename.
    """
    failures: list[str] = []

    def skipped(src: Path, exc: EdgegenError) -> None:
        named = exc if str(src) in str(exc) else EdgegenError(f"image {src}: {exc}")
        if single:
            raise named
        if warn is not None:
            warn(f"skipped: {named}")
        failures.append(str(named))

    for group in progress(chunks(pairs, batch)):
        loaded = _read_group(group, skipped)
        outputs = _run_group(gen, loaded, skipped, timeout)
        for (src, dst, _, profile), out in zip(loaded, outputs, strict=True):
            if out is None:
                continue
            try:
                write_image(dst, out, profile)  # the input's colour space, named
            except OSError as exc:  # a full disk or a vanished folder: stop, with one line
                raise EdgegenError(f"cannot write {dst}: {exc.strerror or exc}") from None
            if written is not None:
                written(src, dst)
    return failures


Loaded = tuple[Path, Path, np.ndarray, bytes | None]  # input, output, pixels, ICC profile


class TimedOut(EdgegenError):
    """An image that took longer than the run's timeout."""


def _read_group(
    group: Sequence[Pair], skipped: Callable[[Path, EdgegenError], None]
) -> list[Loaded]:
    loaded: list[Loaded] = []
    for src, dst in group:
        try:
            image, profile = read_image_profile(src)
        except EdgegenError as exc:
            skipped(src, exc)
            continue
        loaded.append((src, dst, image, profile))
    return loaded


def _run_group(
    gen: Generator,
    loaded: Sequence[Loaded],
    skipped: Callable[[Path, EdgegenError], None],
    timeout: float | None,
) -> list[np.ndarray | None]:
    """The group in one call; when one image in it is bad, one by one to name it."""
    if len(loaded) > 1:
        try:
            images = [image for _, _, image, _ in loaded]
            return list(interruptible(gen, functools.partial(gen.run_batch, images), timeout))
        except ModelError:
            raise
        except EdgegenError:
            pass
    outputs: list[np.ndarray | None] = []
    for src, _, image, _ in loaded:
        try:
            outputs.append(interruptible(gen, functools.partial(gen, image), timeout))
        except ModelError:
            raise
        except EdgegenError as exc:
            skipped(src, exc)
            outputs.append(None)
    return outputs


_T = TypeVar("_T")


def interruptible(gen: Generator, call: Callable[[], _T], timeout: float | None = None) -> _T:
    """``call()`` (a call of ``gen``) in a worker thread, the main thread waiting: Ctrl-C and
    ``timeout`` (seconds) then cancel the inference at once (:meth:`Generator.cancel`)."""
    box: list[Any] = []
    done = threading.Event()

    def work() -> None:
        try:
            box.append((True, call()))
        except BaseException as exc:  # handed to the waiting thread, raised there
            box.append((False, exc))
        finally:
            done.set()

    worker = threading.Thread(target=work, name="edgegen-infer", daemon=True)
    worker.start()
    try:
        finished = done.wait(timeout)
    except KeyboardInterrupt:
        gen.cancel()
        done.wait(CANCEL_WAIT)
        raise
    if not finished:
        gen.cancel()
        done.wait()
        raise TimedOut(f"stopped after the timeout of {timeout:g} s")
    ok, value = box[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


CANCEL_WAIT = 2.0  # seconds a cancelled inference gets to return before Ctrl-C goes on
