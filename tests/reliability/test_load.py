"""Load: 16 threads calling one Generator at once get what sequential calls get, with no error.
The full 60-second run is benchmarks/load_threads.py; this one lasts a few seconds."""

from __future__ import annotations

import threading
import time

import numpy as np
from skimage import data as skdata
from tinymodels import exported

from edgegen.runtime import Generator


def test_sixteen_threads_share_one_generator() -> None:
    gen = Generator(exported(("fp32",)) / "model.fp32.onnx", device="cpu")
    photo = skdata.astronaut()
    images = [photo[i * 20 : i * 20 + 24 + i, i * 30 : i * 30 + 40 - i] for i in range(6)]
    images.append(photo[:32, :32, 0])  # gray
    images.append((photo[:20, :28] / 255.0).astype(np.float32))  # float
    expected = [gen(image) for image in images]  # sequential, before any thread starts
    batch_expected = gen.run_batch([images[0]] * 3)

    errors: list[BaseException] = []
    mismatches: list[int] = []
    calls = [0] * 16
    stop = time.monotonic() + 4.0

    def worker(k: int) -> None:
        i = k
        try:
            while time.monotonic() < stop:
                if i % 5 == 0:  # some threads' calls are batches
                    outs = gen.run_batch([images[0]] * 3)
                    if not all(
                        np.array_equal(a, b) for a, b in zip(outs, batch_expected, strict=True)
                    ):
                        mismatches.append(-1)
                else:
                    j = i % len(images)
                    if not np.array_equal(gen(images[j]), expected[j]):
                        mismatches.append(j)
                calls[k] += 1
                i += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hangs"
    assert errors == [] and mismatches == []
    assert min(calls) >= 1, calls  # every thread ran while the others did
