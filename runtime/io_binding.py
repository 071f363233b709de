"""IO binding: input and output buffers per shape, bound to a session once and reused.

One input and one output buffer per shape, allocated on the provider's device on first use and
reused, so a call copies the input in, runs, and copies the output out, with no allocation (the
CUDA fast path). With ``cuda_graph`` each new shape gets its own CUDA graph id, and the runs
onnxruntime needs before it captures (warm-up) happen when the shape is first seen.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from .errors import EdgegenError
from .session_config import GPU

MAX_BINDINGS = 8  # shapes whose buffers are kept (least recently used one dropped beyond)
MAX_GRAPHS = 8  # CUDA graphs per session: onnxruntime never frees a captured one
GRAPH_WARMUP_RUNS = 3  # onnxruntime runs regularly before it captures; 3 covers every version


class BoundRun:
    """One shape's reusable input and output buffers, bound to the session.

    ``input`` and ``output`` are onnxruntime ``OrtValue``s on the provider's device; an embedder
    may write ``input`` itself (``input.update_inplace(array)``) and call :meth:`run` to keep data
    on the device between calls. :meth:`__call__` copies a host array in and the result out.
    """

    def __init__(
        self,
        session: Any,
        names: tuple[str, str],
        in_shape: tuple[int, ...],
        out_shape: tuple[int, ...],
        dtypes: tuple[np.dtype[Any], np.dtype[Any]],
        device: tuple[str, int],
        graph_id: int | None,
        lock: threading.Lock | None = None,
    ) -> None:
        import onnxruntime as ort

        self.shape = in_shape
        self._session = session
        kind, index = device
        self.input = ort.OrtValue.ortvalue_from_shape_and_type(in_shape, dtypes[0], kind, index)
        self.output = ort.OrtValue.ortvalue_from_shape_and_type(out_shape, dtypes[1], kind, index)
        self._binding = session.io_binding()
        self._binding.bind_ortvalue_input(names[0], self.input)
        self._binding.bind_ortvalue_output(names[1], self.output)
        self._run_options = ort.RunOptions()
        self.graph_id = graph_id
        if graph_id is not None:
            self._run_options.add_run_config_entry("gpu_graph_id", str(graph_id))
        self.lock = lock if lock is not None else threading.Lock()

    def run(self) -> None:
        """Run on what ``input`` holds now; the result is in ``output`` when this returns."""
        try:
            self._session.run_with_iobinding(self._binding, self._run_options)
        except Exception as exc:  # onnxruntime's errors: report the first line
            text = str(exc).strip()
            raise EdgegenError(
                f"onnxruntime failed on a {list(self.shape)} input: "
                + (text.splitlines()[0] if text else type(exc).__name__)
            ) from None

    def warm_up(self, runs: int) -> None:
        for _ in range(runs):
            self.run()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with self.lock:
            self.input.update_inplace(x)
            self.run()
            # A CPU OrtValue's numpy() is a view of the buffer the next call overwrites.
            return np.array(self.output.numpy(), copy=True)


class Bindings:
    """Per-shape :class:`BoundRun`s of one session, made on first use and reused."""

    def __init__(
        self,
        session: Any,
        names: tuple[str, str],
        dtypes: tuple[np.dtype[Any], np.dtype[Any]],
        primary: str,
        cuda_graph: bool,
    ) -> None:
        self._session = session
        self._names = names
        self._dtypes = dtypes
        self._device = ("cuda", 0) if primary in GPU else ("cpu", 0)
        self._graphs = cuda_graph
        self._runs: OrderedDict[tuple[int, ...], BoundRun] = OrderedDict()
        self._lock = threading.Lock()
        self._next_graph = 1  # 0 is onnxruntime's own; -1 means "no graph"
        # Captured graphs replay on the session's one stream: one call at a time for all shapes.
        self._graph_lock = threading.Lock() if cuda_graph else None

    def get(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> BoundRun:
        with self._lock:
            bound = self._runs.get(in_shape)
            if bound is not None:
                self._runs.move_to_end(in_shape)
                return bound
            graph_id = None
            if self._graphs:
                if self._next_graph > MAX_GRAPHS:
                    shapes = ", ".join("x".join(map(str, s)) for s in self._runs)
                    raise EdgegenError(
                        f"cuda_graph is for fixed shapes: {MAX_GRAPHS} are captured already "
                        f"({shapes}); a new {'x'.join(map(str, in_shape))} input needs "
                        "cuda_graph=False"
                    )
                graph_id = self._next_graph
                self._next_graph += 1
            elif len(self._runs) >= MAX_BINDINGS:
                self._runs.popitem(last=False)
            bound = BoundRun(
                self._session,
                self._names,
                in_shape,
                out_shape,
                self._dtypes,
                self._device,
                graph_id,
                self._graph_lock,
            )
            if graph_id is not None:
                # Warm-up per new shape: onnxruntime runs a graph id regularly (allocating what
                # it needs) before it captures it; do those runs now, not in a caller's timing.
                bound.warm_up(GRAPH_WARMUP_RUNS)
            self._runs[in_shape] = bound
            return bound

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        with self._lock:
            return list(self._runs)
