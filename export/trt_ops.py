"""Which ONNX nodes TensorRT's ONNX parser supports: the onnx-tensorrt operator table, checked node by node.

The table is onnx-tensorrt's operator support matrix for TensorRT 10 (opsets 9 to 20; see
docs/architecture.md, "INT8"): each supported op with the data types its first input may have,
plus the restrictions a novum graph can run into. INT8 exists in TensorRT only as a quantized
type: it enters through QuantizeLinear (from a float) and leaves through DequantizeLinear, whose
input must be INT8 (never UINT8) with zero points of 0; UINT8 is a network input / output type
only (our ``images`` input, read by a Cast). :func:`unsupported_nodes` lists what the parser would
refuse; ``tests/fakes`` parse with it, so a graph the real parser rejects fails there too.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

_TYPES = {
    "FP32,FP16,BF16,INT32,INT64": (
        "Abs Add ArgMax ArgMin DepthToSpace Div Equal Greater GreaterOrEqual IsNaN Less LessOrEqual Max "
        "Min Mod Mul Neg Pad Range ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean "
        "ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Scatter ScatterElements ScatterND Shrink "
        "Sign SpaceToDepth Sub Sum TopK"),
    "FP32,FP16,BF16": (
        "Acos Acosh Asin Asinh Atan Atanh AveragePool BatchNormalization Ceil Celu Clip Conv "
        "ConvTranspose Cos Cosh CumSum Dropout Einsum Elu Erf Exp Floor Gemm GlobalAveragePool "
        "GlobalLpPool GlobalMaxPool GroupNormalization GRU HardSigmoid HardSwish Hardmax ImageScaler "
        "InstanceNormalization IsInf LayerNormalization LeakyRelu Log LogSoftmax LRN LSTM "
        "LpNormalization LpPool MatMul MaxPool MeanVarianceNormalization ParametricSoftplus Pow PRelu "
        "QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike Reciprocal Resize "
        "RNN Round ScaledTanh Scan Selu Sigmoid Sin Sinh Softmax Softplus Softsign Sqrt Tan Tanh "
        "ThresholdedRelu Upsample"),
    "BOOL": "And Not Or Xor",
    "FP32,FP16,BF16,INT32,INT64,UINT8,BOOL": "Cast CastLike",
    "FP32,FP16,BF16,INT32,INT64,BOOL": (
        "Concat Constant ConstantOfShape Expand EyeLike Flatten Gather GatherElements GatherND Identity "
        "If Loop OneHot Reshape ReverseSequence Shape Size Slice Split Squeeze Tile Transpose Trilu "
        "Unsqueeze Where"),
    "FP32,FP16": "DeformConv GridSample Mish NonMaxSuppression NonZero RoiAlign",
    "INT8,FP8,INT4": "DequantizeLinear",
    "FP32,FP16,BF16,INT8,INT32,INT64": "Gelu",
    "FP32,FP16,BF16,FP8,INT32,INT64": "Mean",
}
SUPPORTED: dict[str, frozenset[str]] = {op: frozenset(t.split(",")) for t, ops in _TYPES.items() for op in ops.split()}
UNSUPPORTED = frozenset(
    "AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor BlackmanWindow Col2Im CenterCropPad "
    "Compress ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear HammingWindow HannWindow ImageDecoder "
    "MatMulInteger MaxRoiPool MaxUnpool MelWeightMatrix Multinomial NegativeLogLikelihoodLoss Optional "
    "OptionalGetElement OptionalHasElement QLinearConv QLinearMatMul RegexFullMatch STFT SequenceAt "
    "SequenceConstruct SequenceEmpty SequenceErase SequenceInsert SequenceLength SequenceMap "
    "SoftmaxCrossEntropyLoss SplitToSequence StringConcat StringNormalizer StringSplit TfIdfVectorizer Unique".split())
MIN_OPSET, MAX_OPSET = 9, 20
_ONNX_TYPE = {onnx.TensorProto.FLOAT: "FP32", onnx.TensorProto.FLOAT16: "FP16", onnx.TensorProto.BFLOAT16: "BF16",
              onnx.TensorProto.INT32: "INT32", onnx.TensorProto.INT64: "INT64", onnx.TensorProto.INT8: "INT8",
              onnx.TensorProto.UINT8: "UINT8", onnx.TensorProto.BOOL: "BOOL", onnx.TensorProto.DOUBLE: "DOUBLE",
              onnx.TensorProto.FLOAT8E4M3FN: "FP8", onnx.TensorProto.INT4: "INT4"}
_AXES_FROM_INPUT = {"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin",
                    "ReduceProd", "ReduceSum", "ReduceSumSquare", "Slice", "Squeeze", "Unsqueeze", "Pad", "CumSum"}
_RESIZE_COORDS = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}


def unsupported_nodes(model: onnx.ModelProto | str | Path) -> list[str]:
    """One line per node TensorRT's ONNX parser would refuse (empty: every node is supported)."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    out = [] if MIN_OPSET <= opset <= MAX_OPSET else [f"opset {opset}: TensorRT 10 parses opsets {MIN_OPSET}-{MAX_OPSET}"]
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - fall back to the types the file declares
        inferred = model
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.input, *g.output, *g.value_info]}
    types.update({t.name: t.data_type for t in g.initializer})
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = numpy_helper.to_array(a.t)
                    types[n.output[0]] = a.t.data_type
    for n in g.node:
        where = f"{n.name or n.output[0]} ({n.op_type})"
        if n.domain not in ("", "ai.onnx"):
            out.append(f"{where}: custom domain '{n.domain}' (needs a TensorRT plugin)")
            continue
        if n.op_type in UNSUPPORTED or n.op_type not in SUPPORTED:
            out.append(f"{where}: not supported by TensorRT's ONNX parser")
            continue
        t = _ONNX_TYPE.get(types.get(n.input[0], 0)) if n.input and n.input[0] else None
        if t is not None and t not in SUPPORTED[n.op_type]:
            out.append(f"{where}: input type {t} not supported (TensorRT takes {', '.join(sorted(SUPPORTED[n.op_type]))})")
        out += [f"{where}: {why}" for why in _restrictions(n, consts, types)]
    return out


def _restrictions(n: onnx.NodeProto, consts: dict[str, np.ndarray], types: dict[str, int]) -> list[str]:
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
    out = []
    if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
        zp = consts.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if len(n.input) > 2 and n.input[2] and zp is None:
            out.append("zero point must be a constant")
        elif zp is not None and np.any(zp != 0):
            out.append("zero point must be 0")
        if zp is not None and zp.dtype == np.uint8:
            out.append("uint8 quantization: TensorRT quantizes to int8 only")
        if len(n.input) > 1 and n.input[1] not in consts:
            out.append("scale must be a constant")
    if n.op_type in _AXES_FROM_INPUT and "axes" not in attrs:
        k = 3 if n.op_type == "Slice" else 1 if n.op_type != "Pad" else 3
        if len(n.input) > k and n.input[k] and n.input[k] not in consts:
            out.append("axes must be an initializer")
    if n.op_type in ("MaxPool", "AveragePool", "LpPool"):
        if len(n.output) > 1 and n.output[1]:
            out.append("the Indices output is not supported")
        if any(d != 1 for d in attrs.get("dilations", [])):
            out.append("dilations must be 1")
        if len(attrs.get("kernel_shape", [1, 1])) not in (2, 3):
            out.append("2D or 3D pooling only")
    if n.op_type == "Resize":
        if attrs.get("coordinate_transformation_mode", b"half_pixel").decode() not in _RESIZE_COORDS:
            out.append("unsupported coordinate_transformation_mode")
        if attrs.get("mode", b"nearest").decode() not in ("nearest", "linear"):
            out.append("mode must be nearest or linear")
        if attrs.get("antialias", 0):
            out.append("antialiasing is not supported")
    if n.op_type == "TopK":
        if attrs.get("sorted", 1) != 1:
            out.append("sorted must be 1")
        k = consts.get(n.input[1]) if len(n.input) > 1 else None
        if k is not None and int(np.max(k)) >= 3840:
            out.append("K must be less than 3840")
    if n.op_type == "OneHot" and (len(n.input) < 2 or n.input[1] not in consts):
        out.append("depth must be a build-time constant")
    if n.op_type == "ScatterND" and attrs.get("reduction", b"none") not in (b"none", "none"):
        out.append("reduction is not supported")
    if n.op_type == "Constant" and any(k in attrs for k in ("sparse_value", "value_string", "value_strings")):
        out.append("sparse / string constants are not supported")
    return out
