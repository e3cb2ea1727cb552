"""CMSIS-NN scratch buffers TFLite Micro's ``cmsis_nn`` kernels request in the arena.

The host runtime runs reference kernels, which request none, so these are what a Cortex-M build
adds. Sizes follow the ``*_get_buffer_size`` functions of CMSIS-NN (ARM-software/CMSIS-NN,
commit 99f736a, 2026-07) as TFLite Micro's kernels call them (tflite-micro commit 90b983c), for
int8, compiled with GCC (``arm-none-eabi-gcc``):

CONV_2D (``arm_convolve_wrapper_s8_get_buffer_size``)
    1x1 kernel, no padding, dilation 1: 0 bytes (``arm_convolve_1x1_s8_fast`` needs a
    ``2 * C_in * 2``-byte buffer only when built with Arm Compiler 6, none with GCC).
    Otherwise, DSP cores (M4, M7, M33): ``2 * align4(KH * KW * C_in) * sizeof(int16)``
    (the im2col buffer of ``arm_convolve_s8`` and ``arm_convolve_1_x_n_s8``). Cores without DSP
    (M0+, M3) use the same size. MVE cores (M55, M85): ``4 * ceil(KH*KW*C_in / 16) * 16``.
DEPTHWISE_CONV_2D (``arm_depthwise_conv_wrapper_s8_get_buffer_size``)
    Only when channel multiplier 1 (C_in == C_out), batch 1, dilation 1. Then a 3x3 kernel with
    padding <= 1 uses ``arm_depthwise_conv_3x3_s8``: 0 bytes; any other kernel uses
    ``arm_depthwise_conv_s8_opt``: ``C_in * KH * KW * sizeof(int16)`` on DSP cores, 0 without
    DSP, ``4 * 4 * KH * KW`` bytes on MVE cores. Channel multiplier > 1: 0 bytes.
FULLY_CONNECTED (``arm_fully_connected_s8_get_buffer_size``)
    0 bytes on DSP cores; ``C_out * 4`` on MVE cores, where TFLite Micro keeps these kernel sums
    in persistent memory instead when weights and bias are constant. When the output has more
    than 2 dimensions and the depth is a multiple of 4, TFLite Micro runs it as a 1x1
    convolution and, for per-tensor quantised weights, asks for ``C_out * 4 * 2`` bytes of
    per-channel multipliers and shifts.
AVERAGE_POOL_2D (``arm_avgpool_s8_get_buffer_size``)
    ``C * sizeof(int32)`` on DSP cores, 0 otherwise.

Reference kernels (the host runtime, and a Cortex-M build for ops CMSIS-NN lacks) request
scratch too; modelled here from ``reduce_common.cc``: MEAN and SUM on int8 ask, in this order,
for ``4 * output elements`` (int32 accumulator), ``4 * input rank`` and ``4 * number of axes``
bytes; REDUCE_MAX/REDUCE_MIN for the last two. Not modelled (reported as 0): TRANSPOSE_CONV,
BATCH_MATMUL, SVDF, LSTM, MIRROR_PAD and ADD_N scratch, and the int4 filter unpack buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

from ppgedge.profile.graph import Graph, Operator
from ppgedge.profile.layers import ConvGeometry, LayerFacts


@dataclass(frozen=True)
class Scratch:
    """The scratch bytes one operator asks for, the formula, and which kernel asks."""

    op: int
    nbytes: int
    formula: str
    kernel: str = "CMSIS-NN"


def _align4(n: int) -> int:
    return (n + 3) // 4 * 4


def conv_scratch(g: ConvGeometry, dsp: bool, mve: bool) -> tuple[int, str]:
    is_1x1 = (
        g.pad_h == 0
        and g.pad_w == 0
        and g.k_h == 1
        and g.k_w == 1
        and g.dilation_h == 1
        and g.dilation_w == 1
        and g.in_c == g.k_c
    )
    if is_1x1:
        return 0, "1x1 conv: arm_convolve_1x1_s8(_fast), no buffer (GCC)"
    cols = g.k_h * g.k_w * g.k_c
    if mve:
        n = 4 * ((cols + 15) // 16) * 16
        return n, f"MVE im2col 4*ceil({cols}/16)*16"
    n = 2 * _align4(cols) * 2
    return n, f"im2col 2*align4(KH*KW*Cin={cols})*2"


def depthwise_scratch(g: ConvGeometry, dsp: bool, mve: bool) -> tuple[int, str]:
    if not (g.in_c == g.out_c and g.n == 1 and g.dilation_h == 1 and g.dilation_w == 1):
        return 0, "channel multiplier > 1: arm_depthwise_conv_s8, no buffer"
    if mve:
        n = 4 * 4 * g.k_w * g.k_h
        return n, f"MVE 4*4*KH*KW={n}"
    if g.k_h == 3 and g.k_w == 3 and g.pad_h <= 1 and g.pad_w <= 1:
        return 0, "3x3: arm_depthwise_conv_3x3_s8, no buffer"
    if not dsp:
        return 0, "no DSP: no buffer"
    n = g.in_c * g.k_w * g.k_h * 2
    return n, f"Cin*KH*KW*2 = {g.in_c}*{g.k_h}*{g.k_w}*2"


def fully_connected_scratch(graph: Graph, op: Operator, mve: bool) -> tuple[int, str]:
    out = graph.op_outputs(op)[0]
    w = graph.tensors[op.inputs[1]]
    units, depth = w.shape
    if len(out.shape) > 2 and depth % 4 == 0:
        if w.per_channel:
            return 0, "as 1x1 conv, per-channel weights: no buffer"
        return units * 8, f"as 1x1 conv: per-channel quant params Cout*4*2 = {units}*8"
    if mve and not (
        w.is_constant
        and (len(op.inputs) < 3 or op.inputs[2] < 0 or graph.tensors[op.inputs[2]].is_constant)
    ):
        return units * 4, f"MVE kernel sums Cout*4 = {units}*4"
    return 0, "no buffer"


def avgpool_scratch(facts: LayerFacts, dsp: bool, mve: bool) -> tuple[int, str]:
    if dsp and not mve and facts.output_shapes and len(facts.output_shapes[0]) == 4:
        c = facts.output_shapes[0][3]
        return c * 4, f"C*4 = {c}*4"
    return 0, "no buffer"


def reduce_scratch(graph: Graph, op: Operator) -> list[tuple[int, str]]:
    """The reference reduce kernel's requests (accumulator, input iterator, resolved axes)."""
    x = graph.tensors[op.inputs[0]]
    axes = graph.tensors[op.inputs[1]].elements if len(op.inputs) > 1 and op.inputs[1] >= 0 else 1
    out = []
    if op.opcode in ("MEAN", "SUM") and x.dtype in ("INT8", "INT16"):
        n_out = graph.op_outputs(op)[0].elements
        out.append((4 * n_out, f"int32 accumulator 4*{n_out}"))
    out.append((4 * len(x.shape), f"input iterator 4*rank {len(x.shape)}"))
    out.append((4 * axes, f"resolved axes 4*{axes}"))
    return out


REDUCE_OPS = frozenset({"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_ALL"})


def scratch_for(
    graph: Graph, facts: list[LayerFacts], dsp: bool, mve: bool = False, host: bool = False
) -> list[Scratch]:
    """Scratch requests of every operator in request (= execution) order, zeros dropped.

    ``host=True`` gives what the host runtime's reference kernels request (the number it
    reports); otherwise what a Cortex-M build with CMSIS-NN requests.
    """
    out: list[Scratch] = []
    for op, f in zip(graph.operators, facts, strict=True):
        if op.opcode in REDUCE_OPS and op.inputs and op.inputs[0] >= 0:
            for n, formula in reduce_scratch(graph, op):
                if n > 0:
                    out.append(Scratch(op.index, n, formula, "TFLM reference"))
            continue
        if host:
            continue
        n, formula = 0, ""
        if op.opcode == "CONV_2D" and f.geometry is not None:
            n, formula = conv_scratch(f.geometry, dsp, mve)
        elif op.opcode == "DEPTHWISE_CONV_2D" and f.geometry is not None:
            n, formula = depthwise_scratch(f.geometry, dsp, mve)
        elif op.opcode == "FULLY_CONNECTED":
            n, formula = fully_connected_scratch(graph, op, mve)
        elif op.opcode == "AVERAGE_POOL_2D":
            n, formula = avgpool_scratch(f, dsp, mve)
        if n > 0:
            out.append(Scratch(op.index, n, formula))
    return out
