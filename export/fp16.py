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
    fp32: onnx.ModelProto, keep_io_types: bool = True, block_list: tuple[str, ...] = FP16_BLOCK_LIST
) -> onnx.ModelProto:
    """Convert weights and activations to float16 except the block-listed ops.

    With ``keep_io_types`` the model still takes and returns float32, so callers and the
    runtime's pre/post-processing do not change with the precision.
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
            source, keep_io_types=keep_io_types, op_block_list=list(block_list)
        )
    model = onnx.shape_inference.infer_shapes(model)
    if spec is not None:
        set_spec(model, spec.replace(precision="fp16"))
    onnx.checker.check_model(model)
    return model


def settings(
    keep_io_types: bool = True, block_list: tuple[str, ...] = FP16_BLOCK_LIST
) -> dict[str, object]:
    """What the manifest records about the conversion."""
    return {
        "converter": "onnxconverter_common.float16",
        "keep_io_types": keep_io_types,
        "op_block_list": list(block_list),
    }
