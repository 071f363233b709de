"""What a worker of a cluster runs: groups of image files through one Generator per process.

:class:`FileJob` is engine-neutral: a picklable callable that takes a group of ``(input,
output)`` paths, runs them through the model and writes the outputs, exactly as ``edgegen run``
does in one process (:func:`edgegen.runtime.batch.run_files`). Hand it to any engine that calls
a function on worker processes: dask (:mod:`edgegen.cluster.dask_engine`), Ray's ``map`` or
``map_batches``, ``multiprocessing.Pool.map``::

    job = FileJob(ModelFile.ship("model.int8.onnx"), GeneratorOptions())
    result = job([("photos/a.jpg", "out/a.png"), ("photos/b.jpg", "out/b.png")])

Each worker process opens the model once (the first job it runs) and keeps the session for the
jobs after it. The model travels with the job (its bytes, checked against its sha256) or is read
from a path every worker sees; inputs and outputs are paths, so they must be on a filesystem
every worker shares. Outputs are written to a temporary name and renamed, and an output that
exists is skipped unless ``overwrite``: a job run again after its worker died does only what
the first attempt did not finish, and never leaves a half-written file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.files import atomic_write, sha256_file

Pair = tuple[str, str]  # (input image, output file), as strings: they cross process boundaries


@dataclass(frozen=True)
class ModelFile:
    """A model as workers receive it: its name, sha256, and either its bytes or a path every
    worker can read. A worker uses it only if the sha256 matches."""

    name: str
    sha256: str
    path: str | None = None  # read on the worker (a shared filesystem)
    data: bytes | None = field(default=None, repr=False)  # shipped with the job

    @classmethod
    def ship(cls, path: str | Path) -> ModelFile:
        """The model's bytes travel with the jobs (a few MB for these models): workers need no
        shared copy of it."""
        data = Path(path).read_bytes()
        return cls(Path(path).name, hashlib.sha256(data).hexdigest(), data=data)

    @classmethod
    def shared(cls, path: str | Path) -> ModelFile:
        """Workers read ``path`` themselves (a shared filesystem) and check its sha256."""
        resolved = Path(path).resolve()
        return cls(resolved.name, sha256_file(resolved), path=str(resolved))

    def local_path(self) -> Path:
        """On a worker: the model file to open, its sha256 checked."""
        if self.data is None:
            if self.path is None:
                raise EdgegenError(f"model {self.name}: neither its bytes nor a path were given")
            path = Path(self.path)
            try:
                digest = sha256_file(path)
            except OSError as exc:
                raise EdgegenError(
                    f"model {path} cannot be read on this worker: {exc.strerror or exc}"
                ) from None
            if digest != self.sha256:
                raise EdgegenError(
                    f"model {path} on this worker has sha256 {digest[:12]}..., not the "
                    f"client's {self.sha256[:12]}...: the copies differ"
                )
            return path
        # The shipped bytes, cached once per worker machine under their sha256.
        cache = Path(tempfile.gettempdir()) / "edgegen-models"
        cache.mkdir(parents=True, exist_ok=True)
        path = cache / f"{self.sha256}{Path(self.name).suffix or '.onnx'}"
        if not path.is_file() or sha256_file(path) != self.sha256:
            data = self.data

            def write(tmp: Path) -> None:
                tmp.write_bytes(data)

            atomic_write(path, write)
        return path


@dataclass(frozen=True)
class GeneratorOptions:
    """The Generator's options on every worker (``threads`` None: the cores of the worker's
    machine divided among the jobs that run on it at once, see :class:`FileJob`)."""

    device: str = "cpu"
    threads: int | None = None
    tile: int | None = None
    overlap: int | None = None
    session: tuple[tuple[str, Any], ...] = ()  # Generator's session keywords, as pairs
    runtime: str = "onnxruntime"  # or openvino[:PRECISION]
    match_means: bool | None = None  # None: the Generator's default for the model

    def key(self) -> tuple[Any, ...]:
        return (
            self.device, self.threads, self.tile, self.overlap, self.session, self.runtime,
            self.match_means,
        )  # fmt: skip


@dataclass
class JobResult:
    """What one job did: outputs written, outputs that already existed, images that failed (one
    line each), and a fatal error that must stop the whole run (a model that computes wrongly,
    a write that fails), as ``edgegen run`` stops on them."""

    written: list[Pair] = field(default_factory=list)
    existing: int = 0
    failures: list[str] = field(default_factory=list)
    fatal: str | None = None
    worker: str = ""  # host:pid of the process that ran it


_GENERATORS: dict[tuple[Any, ...], Any] = {}
_LOCK = threading.Lock()


def worker_generator(model: ModelFile, options: GeneratorOptions, threads: int | None) -> Any:
    """This process's Generator for ``model`` with ``options``: opened by the first job, kept
    for the rest (a session costs tens of milliseconds to open, more than a small image)."""
    from edgegen.runtime.generator import Generator

    key = (model.sha256, options.key(), threads)
    with _LOCK:
        gen = _GENERATORS.get(key)
        if gen is None:
            # The sha256 was checked just now against the client's: the manifest beside the
            # model (which a shipped copy does not have) was checked on the client.
            gen = Generator(
                model.local_path(),
                device=options.device,
                threads=threads,
                tile=options.tile,
                overlap=options.overlap,
                verify_manifest=False,
                runtime=options.runtime,
                match_means=options.match_means,
                **dict(options.session),
            )
            _GENERATORS[key] = gen
        return gen


@dataclass(frozen=True)
class FileJob:
    """A picklable callable: ``job(pairs)`` runs the model on each input of ``pairs`` and writes
    its output, returning a :class:`JobResult`.

    ``jobs_per_machine``: how many jobs run at once on one machine (worker processes times
    their threads). With ``options.threads`` None, each job's session gets the machine's cores
    divided by it, so that concurrent jobs do not oversubscribe the cores.
    """

    model: ModelFile
    options: GeneratorOptions = GeneratorOptions()
    batch: int = 1
    overwrite: bool = False
    jobs_per_machine: int = 1
    timeout: float | None = None  # seconds one image may take (``edgegen run --timeout``)

    def threads(self) -> int | None:
        if self.options.threads is not None:
            return self.options.threads
        from edgegen.runtime.limits import usable_cores

        return max(1, usable_cores() // max(1, self.jobs_per_machine))

    def __call__(self, pairs: list[Pair]) -> JobResult:
        from edgegen.runtime.batch import run_files

        result = JobResult(worker=f"{os.uname().nodename}:{os.getpid()}")
        todo = []
        for src, dst in pairs:
            if not self.overwrite and Path(dst).exists():
                # Written by an earlier attempt of this job (its worker died after it) or by an
                # earlier run: complete, since outputs only appear by rename.
                result.existing += 1
            else:
                todo.append((Path(src), Path(dst)))
        if not todo:
            return result
        try:
            gen = worker_generator(self.model, self.options, self.threads())
            result.failures = run_files(
                gen,
                todo,
                self.batch,
                written=lambda src, dst: result.written.append((str(src), str(dst))),
                timeout=self.timeout,
            )
        except EdgegenError as exc:  # the model, its session or a write: the run stops
            result.fatal = str(exc)
        return result
