"""Which operators TFLite Micro can run, which CMSIS-NN accelerates, and the model-level gate.

Lists are read from the TFLite Micro sources at commit 90b983c (2026-08-20):
``tensorflow/lite/micro/micro_mutable_op_resolver.h`` (every ``Add*`` builtin registration) and
``tensorflow/lite/micro/kernels/cmsis_nn/`` (kernels with a CMSIS-NN implementation; the others
run TFLite Micro's portable reference kernels on a Cortex-M).
"""

from __future__ import annotations

from ppgedge.errors import PpgedgeError
from ppgedge.profile.graph import FLOAT_TYPES, Graph

TFLM_BUILTINS = frozenset(
    """ABS ADD ADD_N ARG_MAX ARG_MIN ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_MATMUL
    BATCH_TO_SPACE_ND BROADCAST_ARGS BROADCAST_TO CALL_ONCE CAST CEIL CONCATENATION CONV_2D COS
    CUMSUM DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE DIV DYNAMIC_UPDATE_SLICE ELU
    EMBEDDING_LOOKUP EQUAL EXP EXPAND_DIMS FILL FLOOR FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER
    GATHER_ND GREATER GREATER_EQUAL HARD_SWISH IF L2_NORMALIZATION L2_POOL_2D LEAKY_RELU LESS
    LESS_EQUAL LOG LOGICAL_AND LOGICAL_NOT LOGICAL_OR LOGISTIC LOG_SOFTMAX MAXIMUM MAX_POOL_2D
    MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL PACK PAD PADV2 PRELU QUANTIZE READ_VARIABLE
    REDUCE_ALL REDUCE_MAX REDUCE_MIN RELU RELU6 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR
    REVERSE_V2 ROUND RSQRT SELECT_V2 SHAPE SIN SLICE SOFTMAX SPACE_TO_BATCH_ND SPACE_TO_DEPTH
    SPLIT SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB SUM SVDF TANH
    TRANSPOSE TRANSPOSE_CONV UNIDIRECTIONAL_SEQUENCE_LSTM UNPACK VAR_HANDLE WHILE
    ZEROS_LIKE""".split()  # noqa: SIM905  (a word list reads better than 100 quoted names)
)

CMSIS_NN_KERNELS = frozenset(
    """ADD AVERAGE_POOL_2D BATCH_MATMUL CONV_2D DEPTHWISE_CONV_2D FULLY_CONNECTED MAXIMUM
    MAX_POOL_2D MINIMUM MUL PAD SOFTMAX SVDF TRANSPOSE TRANSPOSE_CONV
    UNIDIRECTIONAL_SEQUENCE_LSTM""".split()  # noqa: SIM905
)

# Ops whose cost the cycle model counts in multiply-accumulates.
MAC_OPS = frozenset(
    {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL"}
)
# Weight tensors (input 1) of these ops must be integer for a full-int8 model.
WEIGHT_INPUT = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1}

HOW_TO_INT8 = (
    "quantise the checkpoint first (`ppgedge quantize CKPT --ptq`, or `ppgedge qat CKPT` for "
    "quantisation-aware training) and export the int8 artifact to .tflite"
)


def unsupported_ops(graph: Graph) -> list[str]:
    """Operator names in the model that TFLite Micro has no builtin kernel for."""
    seen: list[str] = []
    for op in graph.operators:
        if op.opcode not in TFLM_BUILTINS and op.opcode not in seen:
            seen.append(op.opcode)
    return seen


def float_tensors(graph: Graph) -> list[str]:
    """Float activations, graph inputs/outputs or conv/fc weights (a not fully int8 model)."""
    found: list[str] = []
    marked: set[int] = set()

    def mark(idx: int, role: str) -> None:
        t = graph.tensors[idx]
        if idx not in marked and t.dtype in FLOAT_TYPES:
            marked.add(idx)
            found.append(f"{role} '{t.name[:50]}' ({t.dtype})")

    for idx in graph.inputs:
        mark(idx, "input")
    for idx in graph.outputs:
        mark(idx, "output")
    for op in graph.operators:
        for idx in op.outputs:
            mark(idx, f"{op.opcode} output")
        w = WEIGHT_INPUT.get(op.opcode)
        if w is not None and len(op.inputs) > w and op.inputs[w] >= 0:
            mark(op.inputs[w], f"{op.opcode} weights")
    return found


def int16_activations(graph: Graph) -> bool:
    return any(graph.tensors[i].dtype == "INT16" for op in graph.operators for i in op.outputs)


def require_int8_tflm(graph: Graph) -> None:
    """Refuse, with what to do instead, models the int8 Cortex-M cost model does not describe."""
    missing = unsupported_ops(graph)
    if missing:
        custom = [m for m in missing if m.startswith("CUSTOM:")]
        hint = " (custom ops need a kernel you register yourself)" if custom else ""
        raise PpgedgeError(
            f"{graph.name}: ops TFLite Micro lacks: {', '.join(missing)}{hint}; re-export the "
            "model with builtin ops TFLite Micro supports"
        )
    floats = float_tensors(graph)
    if floats:
        shown = ", ".join(floats[:3]) + (f" and {len(floats) - 3} more" if len(floats) > 3 else "")
        raise PpgedgeError(
            f"{graph.name}: not a full-int8 model (float tensors: {shown}); ppgedge profiles "
            f"int8 models with int8 input and output: {HOW_TO_INT8}"
        )
    if int16_activations(graph):
        raise PpgedgeError(
            f"{graph.name}: int16 activations (16x8 quantisation) are not modelled; profile a "
            f"full-int8 model: {HOW_TO_INT8}"
        )
