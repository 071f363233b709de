"""A PyTorch module: the reference every exported artifact is compared with (torch, lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgegen.runtime.spec import ModelSpec

from .base import Runner, RunnerInfo


class TorchRunner(Runner):
    """``module`` (any image-to-image ``nn.Module`` that ``spec`` describes) in fp32 eval mode on
    ``device`` (a torch device name), in inference mode; ``channels_last``: the module and its
    inputs in NHWC memory format (PyTorch's faster layout for convolutions on some CPUs)."""

    def __init__(
        self,
        module: Any,
        spec: ModelSpec,
        name: str = "PyTorch",
        path: Path | None = None,
        device: str = "cpu",
        channels_last: bool = False,
    ) -> None:
        import torch

        self.spec = spec
        self.name = name
        self.path = path
        self._torch_device = torch.device(device)
        self._module = module.eval().float().to(self._torch_device)
        self._format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self._module = self._module.to(memory_format=torch.channels_last)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        import torch

        # A copy: a module may change its input in place (``x *= rgb_range``), and the caller's
        # batch must stay the input it was.
        x = torch.from_numpy(np.array(batch, dtype=np.float32, copy=True))
        with torch.inference_mode():
            out = self._module(x.to(self._torch_device).contiguous(memory_format=self._format))
        return np.asarray(out.detach().float().cpu().numpy(), dtype=np.float32)

    @property
    def info(self) -> RunnerInfo:
        import torch

        kind = self._torch_device.type
        return RunnerInfo("torch", torch.__version__, kind, [f"torch-{kind}"], "fp32")
