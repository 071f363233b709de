"""``edgegen run --engine dask``: image files through a dask.distributed cluster.

The client (this process) plans the run as ``edgegen run`` does: inputs found, outputs named,
existing outputs skipped. It ships one :class:`~edgegen.cluster.jobs.FileJob` (the model's bytes
and options) to every worker once, then submits groups of ``(input, output)`` paths, a bounded
number at a time, and gathers what each wrote or failed on as it finishes; workers read the
inputs and write the outputs themselves, so only paths cross the network.

Failures follow dask's policy. A job that raises is retried ``retries`` times, then its images
are listed as failed. A job whose worker dies is run again on another worker (dask gives up
after ``distributed.scheduler.allowed-failures`` deaths, 3 by default: a job that kills every
worker it touches is not retried forever); outputs the dead worker finished exist and are
skipped, and outputs appear only by rename, so nothing is half-written or written twice. An
image that cannot be read, or that the model fails on, fails without a retry: the same file
would fail again. A model that computes wrongly or a write that fails stops the run, as in
``edgegen run``.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.files import remove_temps_of

from .jobs import FileJob, JobResult, Pair

RETRIES = 2  # how often a job that raised is retried before its images are listed as failed
WINDOW_PER_THREAD = 4  # jobs in flight per worker thread: enough to keep every worker busy
JOB_IMAGES = 8  # images per job at most (whole batches): the unit a lost worker's rerun redoes


@dataclass
class ClusterRun:
    """What a run on the cluster did."""

    written: int = 0
    existing: int = 0  # outputs found already written when their job ran
    failures: list[str] = field(default_factory=list)
    rerun: int = 0  # images whose job ran again because its worker died
    workers: int = 0  # the cluster's worker processes when the run started


@contextlib.contextmanager
def dask_client(address: str | None, workers: int | None) -> Iterator[Any]:
    """A client of the scheduler at ``address``, or of a local cluster of ``workers`` worker
    processes (one thread each, loopback only) that is closed afterwards."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise EdgegenError(
            "--engine dask needs dask.distributed, which is not installed: "
            "pip install 'edgegen[cluster]'"
        ) from None
    from edgegen.runtime.limits import usable_cores

    # The engine's own log lines (workers restarted, connections lost) are not the user's
    # concern: the run reports what it redid and what failed.
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    if address is not None:
        if workers is not None:
            raise EdgegenError(
                "--workers starts a local cluster; with --address the cluster's own workers run"
            )
        try:
            client = Client(address)  # dask's connect timeout: distributed.comm.timeouts.connect
        except (OSError, TimeoutError, ValueError) as exc:
            raise EdgegenError(f"cannot reach the dask scheduler at {address}: {exc}") from None
        with client:
            yield client
        return
    count = workers if workers is not None else usable_cores()
    if count < 1:
        raise EdgegenError(f"--workers {count}: at least one worker is needed")
    with warnings.catch_warnings():
        # The scheduler's HTTP server (health checks; the dashboard is off) takes another port
        # when another cluster has 8787, and says so: nothing the run's user needs to hear.
        warnings.filterwarnings("ignore", message=r"Port \d+ is already in use")
        cluster = LocalCluster(
            n_workers=count,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.CRITICAL,
        )
    with cluster, Client(cluster) as client:
        yield client


def jobs_per_machine(client: Any) -> int:
    """The most jobs that run at once on one machine of the cluster (its workers' threads):
    each job's session gets that machine's cores divided by it."""
    per_host: dict[str, int] = {}
    for info in client.scheduler_info()["workers"].values():
        host = str(info.get("host", ""))
        per_host[host] = per_host.get(host, 0) + int(info.get("nthreads", 1))
    return max(per_host.values(), default=1)


def job_groups(pairs: Sequence[Pair], batch: int, threads: int) -> list[list[Pair]]:
    """``pairs`` cut into jobs: whole batches of ``batch``, up to :data:`JOB_IMAGES` images
    (a job costs the engine a few milliseconds, more than a small image takes), but small
    enough that each of the cluster's ``threads`` gets several jobs."""
    per_thread = -(-len(pairs) // max(1, WINDOW_PER_THREAD * threads))
    size = max(batch, min(JOB_IMAGES, per_thread))
    size = -(-size // batch) * batch
    return [list(pairs[i : i + size]) for i in range(0, len(pairs), size)]


def cluster_threads(client: Any) -> int:
    """The jobs the cluster runs at once: its workers' threads."""
    return sum(int(w.get("nthreads", 1)) for w in client.scheduler_info()["workers"].values())


def run_groups(
    client: Any,
    job: FileJob,
    groups: Sequence[list[Pair]],
    retries: int = RETRIES,
    done: Callable[[JobResult, int], None] | None = None,
) -> ClusterRun:
    """Run ``job`` on every group of ``groups`` on the cluster; ``done(result, images)`` is
    told of each finished group (a progress bar, the lines ``edgegen run`` prints).

    Raises :class:`EdgegenError` with the first fatal error (a model that computes wrongly, a
    write that fails), after cancelling what is still queued.
    """
    from distributed import as_completed

    info = client.scheduler_info()["workers"]
    if not info:
        raise EdgegenError("the dask cluster has no workers")
    run = ClusterRun(workers=len(info))
    window = max(2, WINDOW_PER_THREAD * cluster_threads(client))
    # One copy of the job (the model's bytes) per worker, not one per group.
    [shipped] = client.scatter([job], broadcast=True, hash=False)
    token = uuid.uuid4().hex[:8]
    pending = iter(enumerate(groups))
    by_key: dict[str, list[Pair]] = {}
    finished: list[Any] = []

    def submit_next(into: Any) -> None:
        item = next(pending, None)
        if item is None:
            return
        index, group = item
        future = client.submit(
            _call, shipped, group, key=f"edgegen-run-{token}-{index}", retries=retries, pure=False
        )
        by_key[future.key] = group
        into.add(future)

    # Results are gathered in the background as jobs finish, not one round trip at a time.
    queue = as_completed(with_results=True, raise_errors=False)
    try:
        for _ in range(window):
            submit_next(queue)
        for future, value in queue:
            group = by_key[future.key]
            if future.status == "finished":
                result: JobResult = value
                if result.fatal is not None:
                    raise EdgegenError(result.fatal)
                run.written += len(result.written)
                run.existing += result.existing
                run.failures += result.failures
            else:
                reason = _job_error(future)
                run.failures += [f"image {src}: {reason}" for src, _ in group]
                result = JobResult(failures=[reason] * len(group))
            if done is not None:
                done(result, len(group))
            finished.append(future)
            if len(finished) >= window:
                run.rerun += _rerun_images(client, finished, by_key)
                finished.clear()
            submit_next(queue)
        run.rerun += _rerun_images(client, finished, by_key)
        # A worker killed while writing leaves its temporary beside the output it was writing.
        remove_temps_of(Path(dst) for group in groups for _, dst in group)
    except BaseException:  # a fatal error or Ctrl-C: what is queued or running is cancelled
        client.cancel(_live(queue), force=True)
        raise
    return run


def _call(job: FileJob, group: list[Pair]) -> JobResult:
    return job(group)


def _live(queue: Any) -> list[Any]:
    with contextlib.suppress(Exception):
        return list(queue.futures)
    return []


def _job_error(future: Any) -> str:
    """A failed job's reason, one line: the exception it raised after its retries, or dask's
    word that its workers kept dying."""
    try:
        exc = future.exception()
    except Exception as err:  # cancelled, or the scheduler lost it
        return f"the cluster lost the job: {err}"
    if type(exc).__name__ == "KilledWorker":
        return "every worker that ran it died (dask's allowed-failures); not retried further"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _rerun_images(client: Any, futures: list[Any], by_key: dict[str, list[Pair]]) -> int:
    """Images of ``futures`` whose job was running on (or sent to) a worker that died: the
    scheduler counts those deaths per job ("suspicious"). Asked before the futures are
    released, when the scheduler forgets them."""
    keys = [f.key for f in futures]
    if not keys:
        return 0

    def suspicious(dask_scheduler: Any, keys: list[str]) -> dict[str, int]:
        tasks = dask_scheduler.tasks
        return {k: int(tasks[k].suspicious) for k in keys if k in tasks}

    try:
        counts = client.run_on_scheduler(suspicious, keys=keys)
    except Exception:  # a scheduler that refuses run_on_scheduler: nothing to count
        return 0
    total = 0
    for key in keys:
        group = by_key.pop(key, [])
        if counts.get(key, 0):
            total += len(group)
    return total
