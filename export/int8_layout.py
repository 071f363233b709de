"""Channel padding that lets onnxruntime's fastest int8 convolution kernel run every conv.

On x86, onnxruntime's CPU provider runs a QLinearConv with MLAS's symmetric indirect
convolution ("ConvSym", with AVX2/AVX-VNNI/AVX512-VNNI kernels) only when the weights are
symmetric int8, the input channels are a multiple of 4 and there are at least 16 output
channels (``MlasConvSymPackWSize``); any other conv falls back to im2col + QGEMM. A generator's
head (3 input channels) and tail (3 output channels) are exactly the two that miss, and the
profile of the `small` denoiser put them at 7% and 9% of its int8 time.

So after quantization the graph is padded, with zeros, where the kernel needs it:

- input channels: the head conv's quantized input gets a uint8 ``Pad`` with the zero point
  (which dequantizes to exactly 0.0) up to a multiple of 4, and its weights zero columns;
- output channels: a conv with fewer than 16 outputs gets zero filters up to 16 (zero bias)
  and a ``Slice`` after its QuantizeLinear that keeps the real channels.

Zero channels add zero to every sum, so the result is the same function: on onnxruntime 1.32
the padded model's output is bit-identical to the unpadded one, and the `small` denoiser runs
2.92x faster than fp32 instead of 2.53x (``benchmarks/int8_variants.py``). On ARM64, MLAS uses
the indirect kernel only from 64 input channels, so padding engages nothing there and costs a
little; ``channel_pad=False`` (``--no-channel-pad``) leaves the graph as quantized.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

# MlasConvSymPackWSize's conditions on x86 (onnxruntime's mlas/lib/convsym.cpp).
INPUT_CHANNEL_MULTIPLE = 4
MIN_OUTPUT_CHANNELS = 16
# Padding a conv's outputs from, say, 3 to 16 multiplies its work by 5; it pays only when the
# input is wide enough for the GEMM, not the bookkeeping, to dominate (measured on `small`: 32).
MIN_INPUT_CHANNELS_FOR_OUTPUT_PAD = 16


@dataclass(frozen=True)
class _QConv:
    """A QDQ convolution: DequantizeLinear(x) and DequantizeLinear(int8 weights) -> Conv."""

    conv: onnx.NodeProto
    x_dq: onnx.NodeProto
    w_dq: onnx.NodeProto
    weight: np.ndarray
    in_channels: int
    out_channels: int


class _Graph:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.graph = model.graph
        self.inits = {i.name: i for i in self.graph.initializer}
        self.producer = {o: n for n in self.graph.node for o in n.output}
        self.outputs = {o.name for o in self.graph.output}

    def consumers(self, tensor: str) -> list[onnx.NodeProto]:
        return [n for n in self.graph.node if tensor in n.input]

    def array(self, name: str) -> np.ndarray | None:
        init = self.inits.get(name)
        return None if init is None else numpy_helper.to_array(init)

    def set_array(self, name: str, value: np.ndarray) -> None:
        self.inits[name].CopyFrom(numpy_helper.from_array(value, name))

    def add_array(self, name: str, value: np.ndarray) -> str:
        init = numpy_helper.from_array(value, name)
        self.graph.initializer.append(init)
        self.inits[name] = init
        return name

    def insert_before(self, anchor: onnx.NodeProto, *nodes: onnx.NodeProto) -> None:
        index = list(self.graph.node).index(anchor)
        for node in reversed(nodes):
            self.graph.node.insert(index, node)


def _qconv(g: _Graph, conv: onnx.NodeProto) -> _QConv | None:
    """The conv's QDQ parts when it is one MLAS's symmetric kernel could take: plain 2-D,
    ungrouped, its input and its symmetric int8 weights both dequantized from constants."""
    if conv.op_type != "Conv" or conv.domain not in ("", "ai.onnx") or len(conv.input) < 2:
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    if attrs.get("group", 1) != 1:
        return None
    x_dq, w_dq = g.producer.get(conv.input[0]), g.producer.get(conv.input[1])
    if (
        x_dq is None
        or w_dq is None
        or not all(n.op_type == "DequantizeLinear" for n in (x_dq, w_dq))
    ):
        return None
    weight = g.array(w_dq.input[0])
    w_zero = g.array(w_dq.input[2]) if len(w_dq.input) > 2 else None
    x_zero = g.array(x_dq.input[2]) if len(x_dq.input) > 2 else None
    if weight is None or weight.dtype != np.int8 or weight.ndim != 4:
        return None
    if w_zero is not None and np.any(w_zero != 0):
        return None  # asymmetric weights never reach the symmetric kernel
    if x_zero is None or x_zero.size != 1 or g.array(x_dq.input[1]) is None:
        return None
    if len(conv.input) > 2 and conv.input[2]:
        bias = g.producer.get(conv.input[2])
        if conv.input[2] not in g.inits and (bias is None or bias.op_type != "DequantizeLinear"):
            return None
    return _QConv(conv, x_dq, w_dq, weight, weight.shape[1], weight.shape[0])


def _pad_inputs(g: _Graph, q: _QConv, channels: int) -> None:
    """Zero weight columns, and a uint8/int8 Pad with the zero point on the quantized input (a
    new DequantizeLinear, as the original may feed other nodes, e.g. the global skip)."""
    weight = np.zeros((q.out_channels, channels, *q.weight.shape[2:]), q.weight.dtype)
    weight[:, : q.in_channels] = q.weight
    g.set_array(q.w_dq.input[0], weight)
    base = f"{q.conv.name or q.conv.output[0]}_chpad"
    pads = [0, 0, 0, 0, 0, channels - q.in_channels, 0, 0]
    pads_name = g.add_array(f"{base}_pads", np.array(pads, np.int64))
    padded, dequantized = f"{base}_input", f"{base}_input_dq"
    pad = helper.make_node(
        "Pad", [q.x_dq.input[0], pads_name, q.x_dq.input[2]], [padded], name=f"{base}_Pad"
    )
    dq = helper.make_node(
        "DequantizeLinear", [padded, *q.x_dq.input[1:]], [dequantized], name=f"{base}_Dq"
    )
    g.insert_before(q.conv, pad, dq)
    q.conv.input[0] = dequantized


def _pad_vector(g: _Graph, name: str, old: int, new: int, scale: bool) -> None:
    """Extend a per-channel vector: zeros, or for scales the first channel's value (onnxruntime
    fuses a conv into QLinearConv only while bias scale = input scale x weight scale holds)."""
    value = g.array(name)
    if value is not None and value.ndim == 1 and value.shape[0] == old:
        padded = np.full((new,), value[0] if scale else 0, value.dtype)
        padded[:old] = value
        g.set_array(name, padded)


def _output_quantizer(g: _Graph, q: _QConv) -> onnx.NodeProto | None:
    """The conv's one consumer when it is a per-tensor QuantizeLinear whose output feeds other
    nodes and no graph output."""
    users = g.consumers(q.conv.output[0])
    if len(users) != 1 or users[0].op_type != "QuantizeLinear" or q.conv.output[0] in g.outputs:
        return None
    quant = users[0]
    scale = g.array(quant.input[1])
    if scale is None or scale.size != 1 or quant.output[0] in g.outputs:
        return None
    return quant if g.consumers(quant.output[0]) else None  # a dead end: nothing to slice for


def _pad_outputs(g: _Graph, q: _QConv, quant: onnx.NodeProto, channels: int) -> None:
    """Zero filters up to ``channels`` (zero weights and bias, the first channel's scales) and a
    Slice of the real channels after the QuantizeLinear, every consumer rewired to it."""
    cout = q.out_channels
    current = g.array(q.w_dq.input[0])  # the input padding may have widened it already
    assert current is not None
    weight = np.zeros((channels, *current.shape[1:]), current.dtype)
    weight[:cout] = current
    g.set_array(q.w_dq.input[0], weight)
    _pad_vector(g, q.w_dq.input[1], cout, channels, scale=True)
    if len(q.w_dq.input) > 2:
        _pad_vector(g, q.w_dq.input[2], cout, channels, scale=False)
    if len(q.conv.input) > 2 and q.conv.input[2]:
        bias = q.conv.input[2]
        if bias in g.inits:  # a float bias, possibly shared: this conv gets its own copy
            value = g.array(bias)
            assert value is not None
            padded = np.zeros((channels,), value.dtype)
            padded[:cout] = value
            q.conv.input[2] = g.add_array(f"{bias}_chpad{channels}", padded)
        else:
            bias_dq = g.producer[bias]
            _pad_vector(g, bias_dq.input[0], cout, channels, scale=False)
            _pad_vector(g, bias_dq.input[1], cout, channels, scale=True)
            if len(bias_dq.input) > 2:
                _pad_vector(g, bias_dq.input[2], cout, channels, scale=False)
    base = f"{q.conv.name or q.conv.output[0]}_chpad"
    sliced = f"{base}_sliced"
    users = g.consumers(quant.output[0])
    starts = g.add_array(f"{base}_starts", np.array([0], np.int64))
    ends = g.add_array(f"{base}_ends", np.array([cout], np.int64))
    axes = g.add_array(f"{base}_axes", np.array([1], np.int64))
    for user in users:
        for i, name in enumerate(user.input):
            if name == quant.output[0]:
                user.input[i] = sliced
    sl = helper.make_node(
        "Slice", [quant.output[0], starts, ends, axes], [sliced], name=f"{base}_Slice"
    )
    g.insert_before(users[0], sl)  # graph order: after the QuantizeLinear, before its users
    # The padded tensors' recorded shapes are stale; onnxruntime infers them again at load.
    stale = {q.conv.output[0], quant.output[0]}
    kept = [v for v in g.graph.value_info if v.name not in stale]
    del g.graph.value_info[:]
    g.graph.value_info.extend(kept)


def _shared(g: _Graph, name: str, owner: onnx.NodeProto) -> bool:
    return any(n is not owner and name in n.input for n in g.graph.node)


def pad_conv_channels(model: onnx.ModelProto) -> list[str]:
    """Pad a QDQ model's convolutions in place so onnxruntime's symmetric int8 kernel takes them
    (see the module docstring); returns the names of the convs changed, empty when none was."""
    g = _Graph(model)
    changed: list[str] = []
    for conv in list(g.graph.node):
        q = _qconv(g, conv)
        if q is None:
            continue
        # Weights or scales shared with another node cannot be padded for this one alone.
        if any(_shared(g, name, q.w_dq) for name in q.w_dq.input) or _shared(
            g, q.conv.input[1], q.conv
        ):
            continue
        cin = -(-q.in_channels // INPUT_CHANNEL_MULTIPLE) * INPUT_CHANNEL_MULTIPLE
        quant = None
        cout = q.out_channels
        if cout < MIN_OUTPUT_CHANNELS and cin >= MIN_INPUT_CHANNELS_FOR_OUTPUT_PAD:
            quant = _output_quantizer(g, q)
            if quant is not None and len(q.conv.input) > 2 and q.conv.input[2]:
                bias = q.conv.input[2]
                if bias not in g.inits and any(
                    _shared(g, name, g.producer[bias]) for name in g.producer[bias].input
                ):
                    quant = None
            if quant is not None:
                cout = MIN_OUTPUT_CHANNELS
        if cout < MIN_OUTPUT_CHANNELS:
            continue  # the kernel would still refuse it: leave the conv as it is
        if cin != q.in_channels:
            _pad_inputs(g, q, cin)
        if quant is not None:
            _pad_outputs(g, q, quant, cout)
        if cin != q.in_channels or quant is not None:
            changed.append(conv.name or conv.output[0])
    return changed
