"""Lowering: each operator to the CMSIS-NN s8 call TFLite Micro's CMSIS-NN kernel makes.

The function is chosen with the rules of the wrappers TFLM calls (``arm_convolve_wrapper_s8``,
``arm_depthwise_conv_wrapper_s8``, ``arm_fully_connected_wrapper_s8``) for a core with the DSP
extension and no MVE (Cortex-M4/M7/M33), so the generated code calls the kernel itself and the
wrapper (and every kernel it could dispatch to) is not linked. The scratch size is what that
kernel's ``*_get_buffer_size`` asks for (``export.arena``). MEAN, for which CMSIS-NN has no
kernel, is plain C with TFLM's reference arithmetic (``ppgedge_mean_s8`` in the emitted file).

Anything else is refused with one line naming the layer: the backend never falls back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ppgedge.aot import params as P
from ppgedge.aot.graph import AotGraph, Op, Tensor
from ppgedge.errors import PpgedgeError
from ppgedge.export.arena import (
    avgpool_s8_buffer_size,
    convolve_wrapper_s8_buffer_size,
    depthwise_conv_wrapper_s8_buffer_size,
)

SUPPORTED = ("ADD", "AVERAGE_POOL_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
             "MEAN", "PAD", "RESHAPE", "SOFTMAX")  # fmt: skip


@dataclass
class Layer:
    """One emitted step. ``call`` is C with ``$tN`` for tensor N's pointer and ``$scratch``."""

    op: Op
    kernel: str
    call: str
    consts: list[str] = field(default_factory=list)
    scratch: int = 0
    alias: tuple[int, int] | None = None  # (output, input): RESHAPE shares its input's bytes


class Refused(PpgedgeError):
    pass


def _refuse(g: AotGraph, op: Op, why: str) -> Refused:
    return Refused(f"{g.path.name}: {g.layer(op)}: {why}; the AOT backend does not support it "
                   "(use --format tflm for this model)")  # fmt: skip


def _dims4(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    s = (1,) * (4 - len(shape)) + tuple(shape)
    return int(s[0]), int(s[1]), int(s[2]), int(s[3])


def _dims(name: str, n: int, h: int, w: int, c: int) -> str:
    return f"static const cmsis_nn_dims {name} = {{{n}, {h}, {w}, {c}}};"


def _array(ctype: str, name: str, values: np.ndarray | list[int]) -> str:
    vals = [int(v) for v in np.asarray(values).reshape(-1)]
    body = []
    for i in range(0, len(vals), 16):
        body.append("    " + ", ".join(str(v) for v in vals[i : i + 16]) + ",")
    return (f"static const {ctype} {name}[{len(vals)}] PPGEDGE_AOT_ALIGN = {{\n"
            + "\n".join(body) + "\n};")  # fmt: skip


def _int8_io(g: AotGraph, op: Op, *idx: int) -> None:
    for i in idx:
        t = g.tensors[i]
        if t.dtype != "INT8":
            raise _refuse(g, op, f"tensor {t.name!r} is {t.dtype}, not int8")


def _act(g: AotGraph, op: Op, out: Tensor) -> tuple[int, int]:
    act = int(getattr(op.options, "fusedActivationFunction", 0) or 0)
    rng = P.activation_range(act, out.s, out.zp)
    if rng is None:
        raise _refuse(g, op, f"fused activation {act}")
    return rng


def _weights(g: AotGraph, op: Op, p: str) -> tuple[Tensor, Tensor | None, list[str]]:
    w = g.tensors[op.inputs[1]]
    b = g.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    if w.dtype != "INT8" or w.data is None:
        raise _refuse(g, op, "weights that are not a constant int8 tensor")
    if b is not None and (b.dtype != "INT32" or b.data is None):
        raise _refuse(g, op, "a bias that is not a constant int32 tensor")
    if any(z != 0 for z in w.zero_point):
        raise _refuse(g, op, "int8 weights with a non-zero zero point")
    consts = [_array("int8_t", f"{p}_w", w.data)]
    if b is not None:
        consts.append(_array("int32_t", f"{p}_b", b.data))
    return w, b, consts


def _requant(p: str, mults: list[int], shifts: list[int]) -> list[str]:
    return [
        _array("int32_t", f"{p}_mult", mults),
        _array("int32_t", f"{p}_shift", shifts),
        f"static const cmsis_nn_per_channel_quant_params {p}_q = "
        f"{{(int32_t *){p}_mult, (int32_t *){p}_shift}};",
    ]


def _conv(g: AotGraph, op: Op, p: str) -> Layer:
    t, o = g.tensors, op.options
    x, y = t[op.inputs[0]], t[op.outputs[0]]
    _int8_io(g, op, op.inputs[0], op.outputs[0])
    w, b, consts = _weights(g, op, p)
    if len(x.shape) != 4 or len(w.shape) != 4:
        raise _refuse(g, op, "a convolution that is not 4-D")
    n, ih, iw, ic = _dims4(x.shape)
    _, oh, ow, oc = _dims4(y.shape)
    fh, fw, fc = int(w.shape[1]), int(w.shape[2]), int(w.shape[3])
    if ic != fc:
        raise _refuse(g, op, "a grouped convolution")
    dh, dw = int(o.dilationHFactor), int(o.dilationWFactor)
    ph, _ = P.conv_padding(o.padding, o.strideH, dh, ih, fh)
    pw, _ = P.conv_padding(o.padding, o.strideW, dw, iw, fw)
    size, kernel = convolve_wrapper_s8_buffer_size(
        (n, ih, iw, ic), (fh, fw), fc, (o.strideH, o.strideW), (dh, dw), (ph, pw)
    )
    lo, hi = _act(g, op, y)
    mults, shifts = P.per_channel(x.s, w.scale, y.s, oc)
    consts += _requant(p, mults, shifts)
    consts += [
        f"static const cmsis_nn_conv_params {p}_p = {{{-x.zp}, {y.zp}, {{{o.strideW}, "
        f"{o.strideH}}}, {{{pw}, {ph}}}, {{{dw}, {dh}}}, {{{lo}, {hi}}}}};",
        _dims(f"{p}_in", n, ih, iw, ic), _dims(f"{p}_f", 1, fh, fw, fc),
        _dims(f"{p}_bd", 1, 1, 1, oc), _dims(f"{p}_out", n, oh, ow, oc),
    ]  # fmt: skip
    bias = f"{p}_b" if b is not None else "NULL"
    upscale = "NULL, " if kernel == "arm_convolve_s8" else ""
    ctx = "&ctx" if size else "&no_ctx"
    call = (f"{kernel}({ctx}, &{p}_p, &{p}_q, &{p}_in, $t{x.index}, &{p}_f, {p}_w, &{p}_bd, "
            f"{bias}, {upscale}&{p}_out, $t{y.index});")  # fmt: skip
    return Layer(op, kernel, call, consts, size)


def _depthwise(g: AotGraph, op: Op, p: str) -> Layer:
    t, o = g.tensors, op.options
    x, y = t[op.inputs[0]], t[op.outputs[0]]
    _int8_io(g, op, op.inputs[0], op.outputs[0])
    w, b, consts = _weights(g, op, p)
    n, ih, iw, ic = _dims4(x.shape)
    _, oh, ow, oc = _dims4(y.shape)
    fh, fw = int(w.shape[1]), int(w.shape[2])
    mult = int(o.depthMultiplier)
    if mult * ic != oc:
        raise _refuse(g, op, f"depth multiplier {mult} with {ic} -> {oc} channels")
    dh, dw = int(o.dilationHFactor), int(o.dilationWFactor)
    ph, _ = P.conv_padding(o.padding, o.strideH, dh, ih, fh)
    pw, _ = P.conv_padding(o.padding, o.strideW, dw, iw, fw)
    size, kernel = depthwise_conv_wrapper_s8_buffer_size((n, ih, iw, ic), (fh, fw), oc, (dh, dw),
                                                         (ph, pw))  # fmt: skip
    lo, hi = _act(g, op, y)
    mults, shifts = P.per_channel(x.s, w.scale, y.s, oc)
    consts += _requant(p, mults, shifts)
    consts += [
        f"static const cmsis_nn_dw_conv_params {p}_p = {{{-x.zp}, {y.zp}, {mult}, "
        f"{{{o.strideW}, {o.strideH}}}, {{{pw}, {ph}}}, {{{dw}, {dh}}}, {{{lo}, {hi}}}}};",
        _dims(f"{p}_in", n, ih, iw, ic), _dims(f"{p}_f", 1, fh, fw, oc),
        _dims(f"{p}_bd", 1, 1, 1, oc), _dims(f"{p}_out", n, oh, ow, oc),
    ]  # fmt: skip
    bias = f"{p}_b" if b is not None else "NULL"
    ctx = "&ctx" if size else "&no_ctx"
    call = (f"{kernel}({ctx}, &{p}_p, &{p}_q, &{p}_in, $t{x.index}, &{p}_f, {p}_w, &{p}_bd, "
            f"{bias}, &{p}_out, $t{y.index});")  # fmt: skip
    return Layer(op, kernel, call, consts, size)


def _fully_connected(g: AotGraph, op: Op, p: str) -> Layer:
    t = g.tensors
    x, y = t[op.inputs[0]], t[op.outputs[0]]
    _int8_io(g, op, op.inputs[0], op.outputs[0])
    w, b, consts = _weights(g, op, p)
    accum, depth = int(w.shape[-1]), int(y.shape[-1])
    batches = y.elements // depth
    lo, hi = _act(g, op, y)
    bias = f"{p}_b" if b is not None else "NULL"
    if len(y.shape) > 2 and accum % 4 == 0:
        if len(w.scale) == 1:  # TFLM then fills per-channel arrays in a scratch buffer
            raise _refuse(g, op, f"a {len(y.shape)}-D fully-connected output with per-tensor "
                                 "weights (TFLM's 1x1-conv path)")  # fmt: skip
        return _fully_connected_as_1x1(op, p, (x, y), (accum, depth, batches), (lo, hi), consts,
                                       bias, w)  # fmt: skip
    consts += [
        f"static const cmsis_nn_fc_params {p}_p = {{{-x.zp}, 0, {y.zp}, {{{lo}, {hi}}}}};",
        _dims(f"{p}_in", batches, 1, 1, accum), _dims(f"{p}_f", accum, 1, 1, depth),
        _dims(f"{p}_bd", 1, 1, 1, depth), _dims(f"{p}_out", batches, 1, 1, depth),
    ]  # fmt: skip
    if len(w.scale) > 1:
        kernel = "arm_fully_connected_per_channel_s8"
        mults, shifts = P.per_channel(x.s, w.scale, y.s, depth)
        consts += _requant(p, mults, shifts)
    else:
        kernel = "arm_fully_connected_s8"
        m, s = P.fc_per_tensor(x.s, w.s, y.s)
        consts.append(f"static const cmsis_nn_per_tensor_quant_params {p}_q = {{{m}, {s}}};")
    call = (f"{kernel}(&no_ctx, &{p}_p, &{p}_q, &{p}_in, $t{x.index}, &{p}_f, {p}_w, "
            f"&{p}_bd, {bias}, &{p}_out, $t{y.index});")  # fmt: skip
    return Layer(op, kernel, call, consts, 0)


def _fully_connected_as_1x1(
    op: Op,
    p: str,
    io: tuple[Tensor, Tensor],
    sizes: tuple[int, int, int],
    act: tuple[int, int],
    consts: list[str],
    bias: str,
    w: Tensor,
) -> Layer:
    """A fully connected op with an output of more than 2 dimensions and an input depth that
    is a multiple of 4: TFLM's cmsis_nn/fully_connected.cc (EvalQuantizedInt8) runs it as
    ``arm_convolve_1x1_s8_fast`` with the FC's dims (n = batches, 1 x 1 x accum input, accum x
    1 x 1 x depth filter), stride 1, no padding, and per-channel requantisation. Its scratch
    buffer is empty with GCC (arm_convolve_1x1_s8_fast_get_buffer_size), as here. Per-tensor
    weights, for which TFLM builds the per-channel arrays in a scratch buffer, are refused."""
    (x, y), (accum, depth, batches), (lo, hi) = io, sizes, act
    mults, shifts = P.per_channel(x.s, w.scale, y.s, depth)
    consts += _requant(p, mults, shifts)
    consts += [
        f"static const cmsis_nn_conv_params {p}_p = {{{-x.zp}, {y.zp}, {{1, 1}}, {{0, 0}}, "
        f"{{1, 1}}, {{{lo}, {hi}}}}};",
        _dims(f"{p}_in", batches, 1, 1, accum), _dims(f"{p}_f", accum, 1, 1, depth),
        _dims(f"{p}_bd", 1, 1, 1, depth), _dims(f"{p}_out", batches, 1, 1, depth),
    ]  # fmt: skip
    kernel = "arm_convolve_1x1_s8_fast"
    call = (f"{kernel}(&no_ctx, &{p}_p, &{p}_q, &{p}_in, $t{x.index}, &{p}_f, {p}_w, "
            f"&{p}_bd, {bias}, &{p}_out, $t{y.index});")  # fmt: skip
    return Layer(op, kernel, call, consts, 0)


def _add(g: AotGraph, op: Op, p: str) -> Layer:
    t = g.tensors
    a, b, y = t[op.inputs[0]], t[op.inputs[1]], t[op.outputs[0]]
    _int8_io(g, op, a.index, b.index, y.index)
    if a.shape != b.shape or a.data is not None or b.data is not None:
        raise _refuse(g, op, "a broadcasting or constant-operand ADD")
    q = P.add_params(a.s, b.s, y.s)
    lo, hi = _act(g, op, y)
    call = (f"arm_elementwise_add_s8($t{a.index}, $t{b.index}, {-a.zp}, {q['m1']}, {q['s1']}, "
            f"{-b.zp}, {q['m2']}, {q['s2']}, {q['left']}, $t{y.index}, {y.zp}, {q['mo']}, "
            f"{q['so']}, {lo}, {hi}, {y.elements});")  # fmt: skip
    return Layer(op, "arm_elementwise_add_s8", call)


def _pad(g: AotGraph, op: Op, p: str) -> Layer:
    t = g.tensors
    x, pads, y = t[op.inputs[0]], t[op.inputs[1]], t[op.outputs[0]]
    _int8_io(g, op, x.index, y.index)
    if pads.data is None or len(x.shape) > 4:
        raise _refuse(g, op, "padding that is not a constant of rank <= 4")
    value = y.zp
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        cv = t[op.inputs[2]]
        if cv.data is None:
            raise _refuse(g, op, "a non-constant pad value")
        value = int(cv.data.reshape(-1)[0])
    pr = [(int(a), int(b)) for a, b in np.asarray(pads.data).reshape(-1, 2)]
    pr = [(0, 0)] * (4 - len(pr)) + pr
    consts = [
        _dims(f"{p}_in", *_dims4(x.shape)),
        _dims(f"{p}_pre", *(a for a, _ in pr)),
        _dims(f"{p}_post", *(b for _, b in pr)),
    ]
    call = f"arm_pad_s8($t{x.index}, $t{y.index}, {value}, &{p}_in, &{p}_pre, &{p}_post);"
    return Layer(op, "arm_pad_s8", call, consts)


def _avgpool(g: AotGraph, op: Op, p: str) -> Layer:
    t, o = g.tensors, op.options
    x, y = t[op.inputs[0]], t[op.outputs[0]]
    _int8_io(g, op, x.index, y.index)
    if len(x.shape) != 4:
        raise _refuse(g, op, "a pool that is not 4-D")
    n, ih, iw, c = _dims4(x.shape)
    _, oh, ow, _ = _dims4(y.shape)
    ph, _ = P.conv_padding(o.padding, o.strideH, 1, ih, o.filterHeight)
    pw, _ = P.conv_padding(o.padding, o.strideW, 1, iw, o.filterWidth)
    lo, hi = _act(g, op, y)
    size = avgpool_s8_buffer_size(ow, c)
    consts = [
        f"static const cmsis_nn_pool_params {p}_p = {{{{{o.strideW}, {o.strideH}}}, "
        f"{{{pw}, {ph}}}, {{{lo}, {hi}}}}};",
        _dims(f"{p}_in", n, ih, iw, c), _dims(f"{p}_f", 1, o.filterHeight, o.filterWidth, 1),
        _dims(f"{p}_out", n, oh, ow, c),
    ]  # fmt: skip
    call = f"arm_avgpool_s8(&ctx, &{p}_p, &{p}_in, $t{x.index}, &{p}_f, &{p}_out, $t{y.index});"
    return Layer(op, "arm_avgpool_s8", call, consts, size)


def _softmax(g: AotGraph, op: Op, p: str) -> Layer:
    t = g.tensors
    x, y = t[op.inputs[0]], t[op.outputs[0]]
    _int8_io(g, op, x.index, y.index)
    if y.zp != -128 or np.float32(y.s) != np.float32(1.0 / 256):
        raise _refuse(g, op, "an int8 softmax output not on TFLM's fixed grid (1/256, -128)")
    rows = int(x.shape[-1])
    m, s, diff_min = P.softmax_params(float(op.options.beta), x.s)
    call = (f"arm_softmax_s8($t{x.index}, {x.elements // rows}, {rows}, {m}, {s}, {diff_min}, "
            f"$t{y.index});")  # fmt: skip
    return Layer(op, "arm_softmax_s8", call)


def _mean(g: AotGraph, op: Op, p: str) -> Layer:
    t = g.tensors
    x, ax, y = t[op.inputs[0]], t[op.inputs[1]], t[op.outputs[0]]
    _int8_io(g, op, x.index, y.index)
    if ax.data is None or len(x.shape) > 4 or not x.shape:
        raise _refuse(g, op, "a MEAN with non-constant axes or rank > 4")
    rank = len(x.shape)
    axes = {int(a) % rank + (4 - rank) for a in np.asarray(ax.data).reshape(-1)}
    d = _dims4(x.shape)
    n = int(np.prod([d[a] for a in axes]))
    m, s = P.mean_params(x.s, y.s)
    m, s = P.mean_fold(m, s, n)
    flags = ", ".join("1" if i in axes else "0" for i in range(4))
    consts = [f"static const int32_t {p}_d[4] = {{{', '.join(map(str, d))}}};",
              f"static const int32_t {p}_r[4] = {{{flags}}};"]  # fmt: skip
    call = (f"ppgedge_mean_s8($t{x.index}, $t{y.index}, {p}_d, {p}_r, {x.zp * n}, {y.zp}, {m}, "
            f"{s});")  # fmt: skip
    return Layer(op, "ppgedge_mean_s8 (TFLM reference arithmetic)", call, consts)


def _reshape(g: AotGraph, op: Op, p: str) -> Layer:
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if x.bytes != y.bytes:
        raise _refuse(g, op, "a RESHAPE that changes the byte count")
    return Layer(op, "none (shares its input's bytes)", "", alias=(y.index, x.index))


_LOWER = {"ADD": _add, "AVERAGE_POOL_2D": _avgpool, "CONV_2D": _conv,
          "DEPTHWISE_CONV_2D": _depthwise, "FULLY_CONNECTED": _fully_connected, "MEAN": _mean,
          "PAD": _pad, "RESHAPE": _reshape, "SOFTMAX": _softmax}  # fmt: skip


def lower(g: AotGraph) -> list[Layer]:
    """One Layer per operator, or a one-line refusal naming the first unsupported layer."""
    for i in (*g.inputs, *g.outputs):
        if g.tensors[i].dtype != "INT8":
            raise Refused(
                f"{g.path.name}: model input/output {g.tensors[i].name!r} is "
                f"{g.tensors[i].dtype}: the AOT backend compiles int8 models only"
            )
    if len(g.inputs) != 1 or len(g.outputs) != 1:
        raise Refused(f"{g.path.name}: {len(g.inputs)} inputs and {len(g.outputs)} outputs: the "
                      "AOT backend compiles one-input, one-output models only")  # fmt: skip
    layers = []
    for op in g.ops:
        fn = _LOWER.get(op.name)
        if fn is None:
            raise _refuse(g, op, f"operator {op.name}")
        layers.append(fn(g, op, f"l{op.index}"))
    return layers
