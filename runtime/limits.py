"""The machine's limits, so that asking past them is one line and not a hang or a crash.

Threads beyond the cores this process may use are capped (with a note): 10000 intra-op
threads for one small image took minutes to start. Memory a request would obviously need and
the process cannot have (``edgegen bench --sizes 60000x60000``: 40 GiB of input alone) is
refused before it is allocated, rather than left to the kernel's OOM killer. Pure Python.
"""

from __future__ import annotations

import os

from .errors import EdgegenError

# Beyond this count a thread request is a mistake, not a choice (Generator refuses it).
MAX_THREADS = 1024


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def cap_threads(threads: int | None) -> tuple[int | None, str | None]:
    """``threads`` capped at :func:`usable_cores`, and a note saying so when it was."""
    cores = usable_cores()
    if threads is None or threads <= cores:
        return threads, None
    return cores, f"threads {threads} capped at {cores}, the cores this process may use"


def available_memory() -> int | None:
    """Bytes this process could still allocate: the smaller of the memory the kernel reports
    available and the address-space limit (``ulimit -v``); None where neither is known."""
    limits = []
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        pass
    try:
        import resource  # POSIX only
    except ImportError:  # pragma: no cover - Windows
        resource = None  # type: ignore[assignment]
    if resource is not None:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            limits.append(soft)
    return min(limits) if limits else None


def check_memory(needed: int, what: str) -> None:
    """Refuse (one line) a request for ``needed`` bytes that cannot fit in memory."""
    have = available_memory()
    if have is not None and needed > have:
        raise EdgegenError(
            f"out of memory: {what} needs {needed / 2**30:.1f} GiB, "
            f"{have / 2**30:.1f} GiB is available"
        )
