"""Persistent arena bytes (the arena "tail"): TFLite Micro's bookkeeping, an estimate.

The tail holds structures whose size depends on the pointer width, so the host runtime's number
(64-bit) overstates a Cortex-M's. The estimate adds, per item, sizes read from the structure
definitions in tflite-micro commit 90b983c (``TF_LITE_STATIC_MEMORY`` build):

=====================================  =============  =============  =========================
item                                   32-bit bytes   64-bit bytes   count
=====================================  =============  =============  =========================
TfLiteEvalTensor (data, dims, type)    12             24             every tensor
NodeAndRegistration (TfLiteNode: 6     32             64             every operator
pointers + int; registration pointer)
persistent TfLiteTensor                40             64             each graph input/output
its quantisation (affine params +      20             32             each graph input/output
zero-point array)
kernel OpData (per op type, below)     table          table          every operator
per-channel multiplier + shift         8 x C_out      8 x C_out      conv, depthwise, FC with
arrays (int32 each)                                                  per-channel weights
builtin options (TfLiteConvParams...)  table          table          every operator
allocator objects and plan handles     320            560            once
scratch buffer handles                 4              8              each scratch buffer
=====================================  =============  =============  =========================

OpData sizes: ``OpDataConv`` (padding values, zero points, multipliers, two pointers,
activation range) plus the CMSIS-NN kernel's buffer index, ``OpDataFullyConnected``,
``OpDataPooling``, ``OpDataAdd``, ``OpDataReduce``, ``SoftmaxParams``; ops without an OpData
count 0, any op not listed 16. Every allocation is rounded up to 4 bytes (``alignof`` of the
structures). The 64-bit column exists to check the method: with it, the totals land within
about 10 % of the host runtime's measured tail for the three test models (KWS 8,272 B, AD
3,216 B, our ResNet). The 32-bit figures are what the profile reports; both are estimates.
"""

from __future__ import annotations

from dataclasses import dataclass

from ppgedge.profile.graph import Graph

# (32-bit, 64-bit) bytes of the kernel's user data (OpData), per builtin op.
OP_DATA: dict[str, tuple[int, int]] = {
    "CONV_2D": (68, 88), "DEPTHWISE_CONV_2D": (68, 88), "TRANSPOSE_CONV": (72, 96),
    "FULLY_CONNECTED": (56, 72), "BATCH_MATMUL": (64, 96),
    "AVERAGE_POOL_2D": (44, 48), "MAX_POOL_2D": (44, 48),
    "SOFTMAX": (72, 96), "ADD": (60, 60), "SUB": (60, 60), "MUL": (40, 40),
    "MEAN": (44, 44), "SUM": (44, 44), "REDUCE_MAX": (44, 44),
    "PAD": (48, 48), "PADV2": (48, 48), "QUANTIZE": (32, 40), "DEQUANTIZE": (16, 16),
    "LOGISTIC": (24, 24), "TANH": (24, 24), "RELU": (16, 16), "RELU6": (16, 16),
    "LEAKY_RELU": (16, 16), "HARD_SWISH": (32, 32), "CONCATENATION": (48, 56),
    "RESHAPE": (0, 0), "SQUEEZE": (0, 0), "EXPAND_DIMS": (0, 0), "TRANSPOSE": (0, 0),
    "STRIDED_SLICE": (48, 48),
}  # fmt: skip
OP_DATA_DEFAULT = (16, 16)

# Builtin options the flatbuffer parser allocates per op (no pointers: same on 32/64-bit).
BUILTIN_DATA: dict[str, int] = {
    "CONV_2D": 28, "DEPTHWISE_CONV_2D": 32, "TRANSPOSE_CONV": 20, "FULLY_CONNECTED": 16,
    "AVERAGE_POOL_2D": 48, "MAX_POOL_2D": 48, "SOFTMAX": 4, "ADD": 8, "SUB": 8, "MUL": 4,
    "MEAN": 4, "SUM": 4, "RESHAPE": 36, "SQUEEZE": 36, "CONCATENATION": 8, "PAD": 0,
    "STRIDED_SLICE": 20, "LEAKY_RELU": 4, "BATCH_MATMUL": 4,
}  # fmt: skip
PER_CHANNEL_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"})

SIZES = {
    32: {"eval_tensor": 12, "node": 32, "tensor": 40, "quant": 20, "fixed": 320, "handle": 4},
    64: {"eval_tensor": 24, "node": 64, "tensor": 64, "quant": 32, "fixed": 560, "handle": 8},
}


@dataclass(frozen=True)
class PersistentEstimate:
    """Estimated tail bytes by item (``items``: name -> bytes) and their sum."""

    bits: int
    items: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.items.values())


def _a4(n: int) -> int:
    return (n + 3) // 4 * 4


def per_channel_arrays(graph: Graph) -> int:
    """Bytes of the int32 multiplier + shift arrays kernels keep per output channel."""
    total = 0
    for op in graph.operators:
        if len(op.inputs) < 2 or op.inputs[1] < 0:
            continue
        w = graph.tensors[op.inputs[1]]
        if op.opcode in PER_CHANNEL_OPS or (op.opcode == "FULLY_CONNECTED" and w.per_channel):
            if op.opcode == "DEPTHWISE_CONV_2D":
                channels = w.shape[3] if len(w.shape) == 4 else 0
            else:
                channels = w.shape[0] if w.shape else 0
            total += 2 * 4 * channels
    return total


def estimate(graph: Graph, n_scratch: int = 0, bits: int = 32) -> PersistentEstimate:
    """Persistent tail bytes for a ``bits``-bit build (32 for Cortex-M)."""
    s = SIZES[bits]
    col = 0 if bits == 32 else 1
    io = len(set(graph.inputs) | set(graph.outputs))
    items = {
        "eval tensors": s["eval_tensor"] * len(graph.tensors),
        "nodes": s["node"] * len(graph.operators),
        "I/O tensor structs": (s["tensor"] + s["quant"]) * io,
        "kernel op data": sum(
            _a4(OP_DATA.get(op.opcode, OP_DATA_DEFAULT)[col]) for op in graph.operators
        ),
        "per-channel quant arrays": per_channel_arrays(graph),
        "builtin options": sum(_a4(BUILTIN_DATA.get(op.opcode, 8)) for op in graph.operators),
        "runtime objects": s["fixed"] + s["handle"] * n_scratch,
    }
    return PersistentEstimate(bits, items)
