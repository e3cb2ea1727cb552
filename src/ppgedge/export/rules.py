"""The rules a deployable int8 ``.tflite`` must pass, checked on the flatbuffer itself.

A firmware engineer needs: int8 input and output (no float glue on the device), per-channel int8
weights and int32 biases (the TFLite int8 scheme CMSIS-NN kernels implement; optional on a fully
connected layer), no float tensors anywhere, no QUANTIZE/DEQUANTIZE inside the graph (each is a
requantisation pass the network did not need), no TRANSPOSE (it costs a second copy of its tensor
in SRAM and a pass over it), and only operators TFLite Micro registers. Each violation names the
operator and the tensor (layer) that produced it, so the user can find the layer in their model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ppgedge.compress.tflite_file import WEIGHT_OPS, op_name, read_model, tensor_quant

# Builtin operators TFLite Micro registers (MicroMutableOpResolver::Add* in tflite-micro's
# micro_mutable_op_resolver.h), the ones a PPG model plausibly uses.
TFLM_OPS = frozenset(
    {
        "ABS", "ADD", "ADD_N", "ARG_MAX", "ARG_MIN", "AVERAGE_POOL_2D", "BATCH_MATMUL",
        "BATCH_TO_SPACE_ND", "CAST", "CEIL", "CONCATENATION", "CONV_2D", "COS", "CUMSUM",
        "DEPTH_TO_SPACE", "DEPTHWISE_CONV_2D", "DEQUANTIZE", "DIV", "ELU", "EQUAL", "EXP",
        "EXPAND_DIMS", "FILL", "FLOOR", "FLOOR_DIV", "FLOOR_MOD", "FULLY_CONNECTED", "GATHER",
        "GATHER_ND", "GREATER", "GREATER_EQUAL", "HARD_SWISH", "L2_NORMALIZATION", "L2_POOL_2D",
        "LEAKY_RELU", "LESS", "LESS_EQUAL", "LOG", "LOG_SOFTMAX", "LOGICAL_AND", "LOGICAL_NOT",
        "LOGICAL_OR", "LOGISTIC", "MAX_POOL_2D", "MAXIMUM", "MEAN", "MINIMUM", "MIRROR_PAD", "MUL",
        "NEG", "NOT_EQUAL", "PACK", "PAD", "PADV2", "PRELU", "QUANTIZE", "REDUCE_MAX", "RELU",
        "RELU6", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "ROUND", "RSQRT",
        "SELECT_V2", "SHAPE", "SIN", "SLICE", "SOFTMAX", "SPACE_TO_BATCH_ND", "SPACE_TO_DEPTH",
        "SPLIT", "SPLIT_V", "SQRT", "SQUARE", "SQUARED_DIFFERENCE", "SQUEEZE", "STRIDED_SLICE",
        "SUB", "SUM", "SVDF", "TANH", "TRANSPOSE", "TRANSPOSE_CONV", "UNIDIRECTIONAL_SEQUENCE_LSTM",
        "UNPACK", "ZEROS_LIKE",
    }
)  # fmt: skip
FORBIDDEN_OPS = {
    "TRANSPOSE": "a layout transpose (an extra copy of the tensor in SRAM); write the layer "
    "channel-last or as Conv2d(1, k) on (B, C, 1, T)",
    "QUANTIZE": "a requantisation inside the graph; the layers around it disagree on scales",
    "DEQUANTIZE": "a float tensor inside the graph",
}
ACTIVATION_TYPES = {"INT8"}
BIAS_TYPES = {"INT32"}


@dataclass
class RuleReport:
    """Violations (empty when the model passes) and what was checked."""

    path: Path
    ops: list[str]
    violations: list[str] = field(default_factory=list)
    input: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def first_line(self) -> str:
        more = f" (+{len(self.violations) - 1} more)" if len(self.violations) > 1 else ""
        return f"{self.violations[0]}{more}" if self.violations else "ok"


def _layer(sub: Any, op: Any) -> str:
    """Name of the op's first output tensor: the converter names it after the layer."""
    outs = [int(i) for i in (op.outputs if op.outputs is not None else [])]
    return tensor_quant(sub, outs[0])["name"] if outs else "?"


def check_int8_rules(path: str | Path) -> RuleReport:
    """Check every rule; never raises for a violation (the caller decides), only for a file that
    is not a model."""
    model = read_model(path)
    sub = model.subgraphs[0]
    ops = [op_name(model, op) for op in sub.operators]
    report = RuleReport(Path(path), ops)
    v = report.violations
    report.input = tensor_quant(sub, int(sub.inputs[0]))
    report.output = tensor_quant(sub, int(sub.outputs[0]))
    for role, t in (("input", report.input), ("output", report.output)):
        if t["dtype"] != "INT8":
            v.append(
                f"{role} '{t['name']}' is {t['dtype']}, not INT8 (a full-int8 model is needed)"
            )
    for name, op in zip(ops, sub.operators, strict=True):
        layer = _layer(sub, op)
        if name in FORBIDDEN_OPS:
            v.append(f"{name} at layer '{layer}': {FORBIDDEN_OPS[name]}")
        elif name not in TFLM_OPS:
            v.append(f"{name} at layer '{layer}' is not an operator TensorFlow Lite Micro has")
        inputs = [int(i) for i in (op.inputs if op.inputs is not None else []) if int(i) >= 0]
        outputs = [int(i) for i in (op.outputs if op.outputs is not None else [])]
        for k, idx in enumerate(inputs + outputs):
            t = tensor_quant(sub, idx)
            is_bias = name in WEIGHT_OPS and k == 2 and k < len(inputs)
            allowed = BIAS_TYPES if is_bias else ACTIVATION_TYPES | {"INT32"}
            if t["dtype"] not in allowed:
                v.append(f"{name} at layer '{layer}': tensor '{t['name']}' is {t['dtype']}")
        if name in WEIGHT_OPS and len(inputs) >= 2:
            w = tensor_quant(sub, inputs[1])
            if w["dtype"] != "INT8":
                v.append(f"{name} at layer '{layer}': weights are {w['dtype']}, not INT8")
            per_channel = name in ("CONV_2D", "DEPTHWISE_CONV_2D")
            n_out = w["shape"][3 if name == "DEPTHWISE_CONV_2D" else 0] if w["shape"] else 0
            if per_channel and len(w["scale"]) != n_out:
                v.append(
                    f"{name} at layer '{layer}': {len(w['scale'])} weight scales for "
                    f"{n_out} output channels (per-channel int8 expected)"
                )
            if len(w["zero_point"]) and any(int(z) != 0 for z in w["zero_point"]):
                v.append(f"{name} at layer '{layer}': weights are not symmetric (zero point != 0)")
            # FULLY_CONNECTED's bias is optional in TFLite Micro and CMSIS-NN (the kernel passes
            # GetOptionalTensorData(bias) on and arm_nn_vec_mat_mult_t_s8 adds it `if (bias)`);
            # the converter drops an all-zero one, e.g. a fixed DFT layer's
            if len(inputs) < 3 and name != "FULLY_CONNECTED":
                v.append(f"{name} at layer '{layer}': no bias (int32 bias expected)")
    return report
