"""fp16: onnxconverter-common's converter, float32 input/output, a block list of fragile ops."""

from __future__ import annotations

import warnings

import onnx

from .onnx_export import get_spec, set_spec

# Ops left in float32. Normalisations and reductions sum many values (fp16's 65504 ceiling and
# 11-bit mantissa overflow or lose the mean/variance); Resize with cubic weights and the
# exponentials saturate. The converter inserts Casts around them.
FP16_BLOCK_LIST = (
    "InstanceNormalization",
    "LayerNormalization",
    "GroupNormalization",
    "BatchNormalization",
    "ReduceMean",
    "ReduceSum",
    "ReduceL2",
    "ReduceSumSquare",
    "ReduceLogSumExp",
    "Softmax",
    "Exp",
    "Pow",
    "Sqrt",
    "Resize",
)


def convert_fp16(
    fp32: onnx.ModelProto,
    keep_io_types: bool = True,
    block_list: tuple[str, ...] = FP16_BLOCK_LIST,
    node_block_list: tuple[str, ...] = (),
) -> onnx.ModelProto:
    """Convert weights and activations to float16 except the block-listed ops.

    With ``keep_io_types`` the model still takes and returns float32, so callers and the
    runtime's pre/post-processing do not change with the precision. ``node_block_list`` names
    single nodes to keep in float32 as well (see ``edgegen.export.sensitivity``).
    """
    from onnxconverter_common import float16

    spec = get_spec(fp32)
    # The converter trusts value_info types and, for a block-listed node, writes a float16 Cast
    # over an edge that value_info still calls float32: onnxruntime then refuses the graph
    # ("Type (tensor(float)) of output arg ... does not match"). Converting without value_info,
    # then inferring shapes again, gives a consistent graph.
    source = onnx.ModelProto()
    source.CopyFrom(fp32)
    del source.graph.value_info[:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns for every value it clamps to fp16's range
        model = float16.convert_float_to_float16(
            source,
            keep_io_types=keep_io_types,
            op_block_list=list(block_list),
            node_block_list=list(node_block_list) or None,
        )
    # A weight that a kept-fp32 node shares with a converted one (onnxslim merges equal biases:
    # a Conv's and a LayerNorm's) must exist in both types, whichever list kept the node.
    blocked = {n.name for n in fp32.graph.node if n.op_type in block_list and n.name}
    _restore_fp32_weights(model, fp32, blocked | set(node_block_list))
    model = onnx.shape_inference.infer_shapes(model)
    if spec is not None:
        set_spec(model, spec.replace(precision="fp16"))
    onnx.checker.check_model(model)
    return model


def _restore_fp32_weights(model: onnx.ModelProto, fp32: onnx.ModelProto, blocked: set[str]) -> None:
    """Give nodes kept in fp32 float32 weights of their own.

    The converter casts a blocked node's activations back to float32 but converts its
    initializers to float16 all the same, and leaves float32 an initializer that a blocked and
    an unblocked node share (onnxslim merges equal biases): either way onnxruntime refuses the
    graph ("bound to different types"). Blocked nodes get float32 copies (``<name>_fp32``) and
    the initializers other nodes read are float16.
    """
    from onnxconverter_common import float16

    originals = {i.name: i for i in fp32.graph.initializer}
    inits = {i.name: i for i in model.graph.initializer}
    readers: dict[str, set[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, set()).add(node.name)
    for node in model.graph.node:
        if node.name not in blocked:
            continue
        for k, name in enumerate(node.input):
            if name not in inits or name not in originals:
                continue
            copy_name = f"{name}_fp32"
            if copy_name not in inits:
                copy = onnx.TensorProto()
                copy.CopyFrom(originals[name])
                copy.name = copy_name
                model.graph.initializer.append(copy)
                inits[copy_name] = copy
            node.input[k] = copy_name
    for init in model.graph.initializer:
        others = readers.get(init.name, set()) - blocked
        if others and init.data_type == onnx.TensorProto.FLOAT and init.name in originals:
            init.CopyFrom(float16.convert_tensor_float_to_float16(init))


def settings(
    keep_io_types: bool = True,
    block_list: tuple[str, ...] = FP16_BLOCK_LIST,
    node_block_list: tuple[str, ...] = (),
) -> dict[str, object]:
    """What the manifest records about the conversion."""
    return {
        "converter": "onnxconverter_common.float16",
        "keep_io_types": keep_io_types,
        "op_block_list": list(block_list),
        **({"node_block_list": list(node_block_list)} if node_block_list else {}),
    }
