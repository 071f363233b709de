"""Training data: the patch stream (the photos and degradations come from
:mod:`edgegen.evaluation.photos` and :mod:`edgegen.evaluation.degrade`)."""

from .dataset import PatchDataset, StreamSampler, val_samples

__all__ = ["PatchDataset", "StreamSampler", "val_samples"]
