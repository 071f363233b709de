"""The size multiple a network pads its input to inside its forward.

Window-attention networks (SwinIR, HAT, OmniSR, SCUNet, ...) pad the image to a multiple of
their window in Python: ``if h % 8: x = F.pad(x, ...)``. Both exporters record one side of that
branch: the graph exported at a size that needed no padding fails at every size that does, and
one exported at a size that did pads by a constant. Padding the input to that multiple before
the graph (the runtime's ``pad_multiple``) makes the branch a no-op at every size the graph
sees, so the graph is right at all of them.

The multiple is read off the module rather than asked of the user: the forward runs at a few
odd sizes under a torch function mode that records every ``F.pad`` of a tensor of the input's
height and width, and the largest multiple that explains the padded sizes of every probe is it.
A network that pads without cropping its output back shows it in its output size instead.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from edgegen.runtime.spec import ModelSpec

# Sides pairwise telling apart multiples 2..64 (and others), above spandrel's largest stated
# minimum (40); the even pair tells a multiple of 2 plus a margin from a margin alone.
PROBE_SIZES = ((45, 51), (53, 71), (46, 58))


class _PadRecorder(TorchFunctionMode):
    """Records (padded height, padded width) of each F.pad of a tensor of size ``size``, NCHW
    or NHWC (window attention pads a ``view(B, H, W, C)`` of its tokens)."""

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = size
        self.padded: set[tuple[int, int]] = set()

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        x = args[0] if args else None
        if func is F.pad and isinstance(x, torch.Tensor) and isinstance(out, torch.Tensor):
            if x.dim() == 4 and tuple(x.shape[-2:]) == self.size:
                self.padded.add((int(out.shape[-2]), int(out.shape[-1])))
            elif x.dim() == 4 and tuple(x.shape[1:3]) == self.size:  # channels last (FDAT)
                self.padded.add((int(out.shape[1]), int(out.shape[2])))
        return out


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def internal_pad_multiple(module: nn.Module, spec: ModelSpec) -> int:
    """The multiple ``module`` pads its input to in its forward; 1 if it does not (or if a
    probe size is one it cannot run)."""
    seen: list[tuple[tuple[int, int], set[tuple[int, int]]]] = []
    for h, w in PROBE_SIZES:
        h, w = _round_up(h, spec.pad_multiple), _round_up(w, spec.pad_multiple)
        recorder = _PadRecorder((h, w))
        x = torch.rand(1, spec.in_channels, h, w)
        try:
            with torch.no_grad(), recorder:
                module(x)
        except Exception:  # a module that cannot run here: the export's own probes will say
            return 1
        seen.append(((h, w), recorder.padded))
    largest = max((max(p) for _, padded in seen for p in padded), default=1)
    for multiple in range(largest, 1, -1):
        # The same margin on top of the rounded-up size at every probe: none for a window
        # network, a reflection margin for Real-CUGAN (18 a side on sides rounded to even).
        margins: set[int] | None = None
        for (h, w), padded in seen:
            here = {
                ph - _round_up(h, multiple)
                for ph, pw in padded
                if ph - _round_up(h, multiple) == pw - _round_up(w, multiple) >= 0
            }
            margins = here if margins is None else margins & here
        if margins:
            return multiple
    return 1


def output_size_multiple(module: nn.Module, spec: ModelSpec) -> int:
    """The smallest power of two the input's sides must be a multiple of for the output to be
    ``scale`` times the input: a network that pads internally and does not crop back (Real-CUGAN
    pads odd sides to even) returns a larger image otherwise. 1 where every probe size gives
    the right size, or where no multiple up to 64 does (verification then names the size)."""

    def exact(sizes: list[tuple[int, int]]) -> bool:
        for h, w in sizes:
            try:
                with torch.no_grad():
                    y = module(torch.rand(1, spec.in_channels, h, w))
            except Exception:  # a size the module cannot run: not this multiple
                return False
            if not isinstance(y, torch.Tensor) or tuple(y.shape[-2:]) != (
                h * spec.scale,
                w * spec.scale,
            ):
                return False
        return True

    probes = [
        (_round_up(h, spec.pad_multiple), _round_up(w, spec.pad_multiple)) for h, w in PROBE_SIZES
    ]
    if exact(probes):
        return 1
    for multiple in (2, 4, 8, 16, 32, 64):
        if exact([(_round_up(h, multiple), _round_up(w, multiple)) for h, w in probes]):
            return multiple
    return 1


def with_internal_padding(module: nn.Module, spec: ModelSpec) -> tuple[ModelSpec, int]:
    """``spec`` with its pad multiple a multiple of the module's own padding (or of what its
    output size needs), and that."""
    multiple = math.lcm(internal_pad_multiple(module, spec), output_size_multiple(module, spec))
    if multiple <= 1 or spec.pad_multiple % multiple == 0:
        return spec, multiple
    return spec.replace(pad_multiple=math.lcm(spec.pad_multiple, multiple)), multiple
