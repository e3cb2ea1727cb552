"""The firmware's op resolver: which ``MicroMutableOpResolver`` call registers each operator.

A bundle registers exactly the model's operators, with TFLite Micro's int8-only kernel where
one exists and every use is int8 (smaller firmware); an operator TFLite Micro cannot register
is refused here, naming the layer that produced it, before any file is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ppgedge.errors import PpgedgeError
from ppgedge.export.arena import read_graph

# BuiltinOperator name -> MicroMutableOpResolver method, as declared in tflite-micro's
# tensorflow/lite/micro/micro_mutable_op_resolver.h (checked at commit 90b983c2, 2026-08-20):
# every builtin that has an Add* method calling AddBuiltin(BuiltinOperator_<NAME>, ...).
OP_RESOLVER_METHODS: dict[str, str] = {
    "ABS": "AddAbs",
    "ADD": "AddAdd",
    "ADD_N": "AddAddN",
    "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo",
    "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast",
    "CEIL": "AddCeil",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "COS": "AddCos",
    "CUMSUM": "AddCumSum",
    "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEQUANTIZE": "AddDequantize",
    "DIV": "AddDiv",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice",
    "ELU": "AddElu",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup",
    "EQUAL": "AddEqual",
    "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims",
    "FILL": "AddFill",
    "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected",
    "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater",
    "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish",
    "IF": "AddIf",
    "L2_NORMALIZATION": "AddL2Normalization",
    "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu",
    "LESS": "AddLess",
    "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog",
    "LOGICAL_AND": "AddLogicalAnd",
    "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr",
    "LOGISTIC": "AddLogistic",
    "LOG_SOFTMAX": "AddLogSoftmax",
    "MAXIMUM": "AddMaximum",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean",
    "MINIMUM": "AddMinimum",
    "MIRROR_PAD": "AddMirrorPad",
    "MUL": "AddMul",
    "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual",
    "PACK": "AddPack",
    "PAD": "AddPad",
    "PADV2": "AddPadV2",
    "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize",
    "READ_VARIABLE": "AddReadVariable",
    "REDUCE_ALL": "AddReduceAll",
    "REDUCE_MAX": "AddReduceMax",
    "REDUCE_MIN": "AddReduceMin",
    "RELU": "AddRelu",
    "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "REVERSE_V2": "AddReverseV2",
    "ROUND": "AddRound",
    "RSQRT": "AddRsqrt",
    "SELECT_V2": "AddSelectV2",
    "SHAPE": "AddShape",
    "SIN": "AddSin",
    "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd",
    "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit",
    "SPLIT_V": "AddSplitV",
    "SQRT": "AddSqrt",
    "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference",
    "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub",
    "SUM": "AddSum",
    "SVDF": "AddSvdf",
    "TANH": "AddTanh",
    "TRANSPOSE": "AddTranspose",
    "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "UNPACK": "AddUnpack",
    "VAR_HANDLE": "AddVarHandle",
    "WHILE": "AddWhile",
    "ZEROS_LIKE": "AddZerosLike",
}

# Int8-only registrations TFLite Micro offers (``Register_<OP>_INT8()`` in the kernel header
# named here; checked at commit 90b983c2 against tensorflow/lite/micro/kernels/*.h, and by
# tests/test_bundle.py against the sources when they are present). The default ``Add*()`` links
# the kernel's float and int16 variants too: 137 KB instead of 107 KB for the main job's model.
INT8_REGISTRATIONS: dict[str, str] = {
    "ADD": "add.h",
    "AVERAGE_POOL_2D": "pooling.h",
    "BATCH_MATMUL": "batch_matmul.h",
    "CONV_2D": "conv.h",
    "DEPTHWISE_CONV_2D": "depthwise_conv.h",
    "FULLY_CONNECTED": "fully_connected.h",
    "MAXIMUM": "maximum_minimum.h",
    "MAX_POOL_2D": "pooling.h",
    "MINIMUM": "maximum_minimum.h",
    "MUL": "mul.h",
    "PAD": "pad.h",
    "SOFTMAX": "softmax.h",
    "TRANSPOSE": "transpose.h",
    "TRANSPOSE_CONV": "transpose_conv.h",
}


@dataclass(frozen=True)
class ResolverCall:
    """One ``resolver.Add*()`` line: the op, its method, its count, the int8-only kernel."""

    op: str
    method: str
    count: int
    int8: str | None  # "Register_<OP>_INT8" when every use is on int8 tensors

    @property
    def argument(self) -> str:
        return f"tflite::{self.int8}()" if self.int8 else ""


def resolver_calls(tflite_path: str | Path) -> list[ResolverCall]:
    """The model's distinct operators in order of first use, each with the int8-only kernel
    when TFLite Micro offers one and every non-constant tensor of every use is int8; an
    operator TFLite Micro cannot register is an error naming its layer."""
    graph = read_graph(tflite_path)
    seen: dict[str, int] = {}
    all_int8: dict[str, bool] = {}
    for op in graph.ops:
        if op.name not in OP_RESOLVER_METHODS:
            raise PpgedgeError(
                f"{tflite_path}: operator {op.name} (op #{op.index}, layer "
                f"'{graph.layer(op)}') has no TensorFlow Lite Micro registration in "
                "MicroMutableOpResolver: the firmware could not run it; change the layer that "
                "produced it and export again"
            )
        seen[op.name] = seen.get(op.name, 0) + 1
        tensors = [graph.tensors[i] for i in (*op.inputs, *op.outputs) if i >= 0]
        int8 = all(t.dtype == "INT8" for t in tensors if not t.constant)
        all_int8[op.name] = all_int8.get(op.name, True) and int8
    return [
        ResolverCall(
            name,
            OP_RESOLVER_METHODS[name],
            count,
            f"Register_{name}_INT8" if name in INT8_REGISTRATIONS and all_int8[name] else None,
        )
        for name, count in seen.items()
    ]


def resolver_fields(calls: list[ResolverCall]) -> dict[str, Any]:
    """The op resolver header's fields: the Add* lines and the int8 kernels' includes."""
    return {
        "op_count": len(calls),
        "op_list": ", ".join(c.op for c in calls),
        "add_calls": "\n".join(
            f"  if (resolver.{c.method}({c.argument}) != kTfLiteOk) return kTfLiteError;"
            f"  // {c.op} x{c.count}" + ("" if c.int8 else " (default registration)")
            for c in calls
        ),
        "kernel_includes": "\n".join(
            f'#include "tensorflow/lite/micro/kernels/{h}"'
            for h in sorted({INT8_REGISTRATIONS[c.op] for c in calls if c.int8})
        ),
    }
