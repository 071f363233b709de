"""Many threads calling one Generator at once: each output must equal the sequential call's."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np


def assert_threads_match_sequential(
    gen: Callable[[np.ndarray], np.ndarray], images: Sequence[np.ndarray], threads: int, calls: int
) -> None:
    """THREADS threads each make CALLS calls of GEN, cycling through IMAGES from a different
    start; no call may raise and every output must equal the one computed sequentially first."""
    expected = [gen(im) for im in images]
    results: dict[tuple[int, int], np.ndarray] = {}
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for k in range(calls):
                results[(t, k)] = gen(images[(t + k) % len(images)])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors, errors
    assert len(results) == threads * calls
    for (t, k), out in results.items():
        np.testing.assert_array_equal(out, expected[(t + k) % len(images)])
