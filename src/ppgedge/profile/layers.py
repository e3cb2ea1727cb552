"""Per-operator facts from tensor shapes alone: MACs, parameter and activation bytes, geometry.

MACs count one multiply-accumulate per weight use, the convention of MLPerf Tiny and ST Edge
AI's analyze report (bias adds, requantisation and pooling are not MACs):

* CONV_2D: output elements x KH x KW x input channels per group
* DEPTHWISE_CONV_2D: output elements x KH x KW
* FULLY_CONNECTED: rows x output units x input units
* TRANSPOSE_CONV: input elements x KH x KW x output channels
* BATCH_MATMUL: output elements x contracted dimension
"""

from __future__ import annotations

from dataclasses import dataclass

from ppgedge.errors import PpgedgeError
from ppgedge.profile.graph import Graph, Operator, Tensor


@dataclass(frozen=True)
class ConvGeometry:
    """NHWC input/output, filter (KH, KW, Cin per group) and the padding TFLite Micro computes."""

    n: int
    in_h: int
    in_w: int
    in_c: int
    out_h: int
    out_w: int
    out_c: int
    k_h: int
    k_w: int
    k_c: int
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    pad_h: int
    pad_w: int


@dataclass(frozen=True)
class LayerFacts:
    """What one operator does, independent of the target."""

    index: int
    opcode: str
    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...]
    macs: int
    param_bytes: int
    activation_bytes: int
    input_elements: int
    output_elements: int
    geometry: ConvGeometry | None = None


def _bad(graph: Graph, op: Operator, why: str) -> PpgedgeError:
    return PpgedgeError(f"{graph.name}: malformed {op.opcode} (op {op.index}): {why}")


def _padding(kind: int, size: int, out: int, stride: int, dilation: int, k: int) -> int:
    """TFLite Micro's ComputePaddingHeightWidth: SAME pads half the overhang (floor), VALID 0."""
    if kind != 0:  # Padding.VALID
        return 0
    effective = (k - 1) * dilation + 1
    return max(((out - 1) * stride + effective - size) // 2, 0)


def _conv_geometry(graph: Graph, op: Operator, x: Tensor, w: Tensor, y: Tensor) -> ConvGeometry:
    if len(x.shape) != 4 or len(w.shape) != 4 or len(y.shape) != 4:
        raise _bad(graph, op, "input, filter and output must be 4-D (NHWC)")
    o = op.options
    stride_h, stride_w = o.get("stride_h", 1), o.get("stride_w", 1)
    dil_h, dil_w = o.get("dilation_h", 1) or 1, o.get("dilation_w", 1) or 1
    if min(stride_h, stride_w, dil_h, dil_w) < 1:
        raise _bad(graph, op, "stride and dilation must be >= 1")
    n, in_h, in_w, in_c = x.shape
    _, out_h, out_w, out_c = y.shape
    if op.opcode == "DEPTHWISE_CONV_2D":
        _, k_h, k_w, f_c = w.shape
        if f_c != out_c:
            raise _bad(graph, op, f"filter has {f_c} channels, output {out_c}")
        k_c = 1
    else:
        f_out, k_h, k_w, k_c = w.shape
        if f_out != out_c:
            raise _bad(graph, op, f"filter has {f_out} output channels, output {out_c}")
        if k_c < 1 or in_c % k_c:
            raise _bad(graph, op, f"{in_c} input channels are not a multiple of {k_c}")
    pad = o.get("padding", 1)
    return ConvGeometry(
        n,
        in_h,
        in_w,
        in_c,
        out_h,
        out_w,
        out_c,
        k_h,
        k_w,
        k_c,
        stride_h,
        stride_w,
        dil_h,
        dil_w,
        _padding(pad, in_h, out_h, stride_h, dil_h, k_h),
        _padding(pad, in_w, out_w, stride_w, dil_w, k_w),
    )


def _macs(graph: Graph, op: Operator) -> tuple[int, ConvGeometry | None]:
    ins = [graph.tensors[i] if i >= 0 else None for i in op.inputs]
    outs = graph.op_outputs(op)
    if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        if len(ins) < 2 or ins[0] is None or ins[1] is None or not outs:
            raise _bad(graph, op, "needs an input, a filter and an output")
        geo = _conv_geometry(graph, op, ins[0], ins[1], outs[0])
        per_output = geo.k_h * geo.k_w * geo.k_c
        return outs[0].elements * per_output, geo
    if op.opcode == "FULLY_CONNECTED":
        if len(ins) < 2 or ins[0] is None or ins[1] is None or not outs:
            raise _bad(graph, op, "needs an input, weights and an output")
        w = ins[1]
        if len(w.shape) != 2:
            raise _bad(graph, op, f"weights must be 2-D, got {list(w.shape)}")
        units, depth = w.shape
        if depth < 1 or ins[0].elements % depth:
            raise _bad(graph, op, f"{ins[0].elements} input values are not rows of {depth}")
        return ins[0].elements // depth * units * depth, None
    if op.opcode == "TRANSPOSE_CONV":
        if len(ins) < 3 or ins[1] is None or ins[2] is None or len(ins[1].shape) != 4:
            raise _bad(graph, op, "needs output shape, a 4-D filter and an input")
        f_out, k_h, k_w, _ = ins[1].shape
        return ins[2].elements * k_h * k_w * f_out, None
    if op.opcode == "BATCH_MATMUL":
        if len(ins) < 2 or ins[0] is None or not outs or len(ins[0].shape) < 2:
            raise _bad(graph, op, "needs two inputs of rank >= 2")
        return outs[0].elements * ins[0].shape[-1], None
    return 0, None


def analyze(graph: Graph, op: Operator) -> LayerFacts:
    """Facts of one operator (raises a one-line error on inconsistent shapes)."""
    macs, geometry = _macs(graph, op)
    ins = graph.op_inputs(op)
    outs = graph.op_outputs(op)
    params = sum(t.const_bytes for t in ins if t.is_constant)
    acts = [t for t in ins if not t.is_constant]
    return LayerFacts(
        index=op.index,
        opcode=op.opcode,
        input_shapes=tuple(t.shape for t in acts),
        output_shapes=tuple(t.shape for t in outs),
        macs=int(macs),
        param_bytes=int(params),
        activation_bytes=sum(t.nbytes for t in acts) + sum(t.nbytes for t in outs),
        input_elements=sum(t.elements for t in acts),
        output_elements=sum(t.elements for t in outs),
        geometry=geometry,
    )
