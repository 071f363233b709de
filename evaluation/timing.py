"""Timing side by side: calls run in alternating blocks, so a noisy machine slows each alike."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

Call = Callable[[], Any]


SWITCH_PAUSE_S = 0.1


def time_alternating(
    calls: Mapping[str, Call], rounds: int, block: int = 5, pause: float = SWITCH_PAUSE_S
) -> dict[str, list[float]]:
    """Seconds per call for each entry, run in alternating blocks after one warm-up block.

    Each block starts with a ``pause`` and one untimed call. onnxruntime's idle workers spin
    (the default) for tens of milliseconds after a run; right after a switch, the previous
    session's spinning workers took a core from the next one. Measured on 2 cores with no pause,
    alternating fp32 and int8 sessions put the first two int8 calls of each block at 31 and 28 ms
    against 15.5 ms, and int8's p95 at twice its p50. A 0.1 s pause lets them go idle. The
    untimed call then wakes the next session's own workers."""
    for fn in calls.values():
        for _ in range(2):
            fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            time.sleep(pause)
            fn()
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return times
