"""Batch inference past one process: image files through a cluster of workers.

:mod:`edgegen.cluster.jobs` is what a worker runs, for any engine (:class:`FileJob`, one
Generator per worker process); :mod:`edgegen.cluster.dask_engine` runs it on dask.distributed,
a local cluster or one at an address (``edgegen run --engine dask``). Imports the runtime and,
for the engine, ``distributed`` (``pip install 'edgegen[cluster]'``); nothing imports it but the
CLI.
"""

from __future__ import annotations

from .jobs import FileJob, GeneratorOptions, JobResult, ModelFile

__all__ = ["FileJob", "GeneratorOptions", "JobResult", "ModelFile"]
