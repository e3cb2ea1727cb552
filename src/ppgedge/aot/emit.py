"""C emission: ``NAME_aot.h`` / ``NAME_aot.c``, plain C99 with no interpreter and no allocation.

The .c file holds the constants (weights, biases, per-channel multipliers and shifts, kernel
parameter structs, all ``static const`` so they stay in flash) and ``NAME_invoke``: one CMSIS-NN
call per layer on pointers into the caller's arena at the plan's offsets. With CMSIS-NN's
headers on a plain ``-I`` path the whole unit is clean under ``-std=c99 -Wall -Wextra -Werror
-pedantic`` for the host and Cortex-M (checked at the vendored pin; no ``-isystem`` needed).
"""

from __future__ import annotations

from string import Template

from ppgedge.aot.graph import AotGraph
from ppgedge.aot.lower import Layer
from ppgedge.aot.plan import Plan

# TFLM's reference arithmetic for MEAN (reduce.h QuantizedMeanOrSum, common.h
# MultiplyByQuantizedMultiplier with gemmlowp's SaturatingRoundingDoublingHighMul and
# RoundingDivideByPOT, double-rounding build); the sum order differs, integer sums do not care.
MEAN_C = """
static int32_t ppgedge_srdhm(int32_t a, int32_t b)
{
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int32_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)((ab + nudge) / (1LL << 31));
}

static int32_t ppgedge_rdbpot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)((1LL << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

static void ppgedge_mean_s8(const int8_t *in, int8_t *out, const int32_t d[4],
                            const int32_t r[4], int32_t zp_times_n, int32_t out_zp,
                            int32_t mult, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    int32_t a0, a1, a2, a3, b0, b1, b2, b3;
    for (a0 = 0; a0 < (r[0] ? 1 : d[0]); ++a0)
    for (a1 = 0; a1 < (r[1] ? 1 : d[1]); ++a1)
    for (a2 = 0; a2 < (r[2] ? 1 : d[2]); ++a2)
    for (a3 = 0; a3 < (r[3] ? 1 : d[3]); ++a3) {
        int32_t sum = 0;
        int32_t v;
        for (b0 = 0; b0 < (r[0] ? d[0] : 1); ++b0)
        for (b1 = 0; b1 < (r[1] ? d[1] : 1); ++b1)
        for (b2 = 0; b2 < (r[2] ? d[2] : 1); ++b2)
        for (b3 = 0; b3 < (r[3] ? d[3] : 1); ++b3) {
            sum += in[(((a0 + b0) * d[1] + (a1 + b1)) * d[2] + (a2 + b2)) * d[3] + (a3 + b3)];
        }
        v = ppgedge_rdbpot(ppgedge_srdhm((sum - zp_times_n) * (1 << left), mult), right);
        v += out_zp;
        *out++ = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
    }
}
"""


def header(ident: str, g: AotGraph, plan: Plan, note: str) -> str:
    up = ident.upper()
    x, y = g.tensors[g.inputs[0]], g.tensors[g.outputs[0]]
    return f"""/* {ident}_aot.h: model "{ident}" compiled ahead of time to C99 + CMSIS-NN (ppgedge).
 * {note}
 * No interpreter, no flatbuffer, no allocation: {ident}_invoke runs every layer on the caller's
 * arena ({up}_AOT_ARENA_SIZE bytes, 16-byte aligned). Do not edit; regenerate. */
#ifndef {up}_AOT_H_
#define {up}_AOT_H_

#include <stdint.h>

#define {up}_AOT_ARENA_SIZE {plan.arena_bytes}
#define {up}_AOT_INPUT_BYTES {x.bytes}
#define {up}_AOT_INPUT_OFFSET {plan.offsets[g.inputs[0]]} /* its slot in the arena */
#define {up}_AOT_OUTPUT_OFFSET {plan.offsets[g.outputs[0]]}
#define {up}_AOT_OUTPUT_BYTES {y.bytes}
#define {up}_AOT_INPUT_SCALE {x.s!r}f
#define {up}_AOT_INPUT_ZERO_POINT {x.zp}
#define {up}_AOT_OUTPUT_SCALE {y.s!r}f
#define {up}_AOT_OUTPUT_ZERO_POINT {y.zp}

#ifdef __cplusplus
extern "C" {{
#endif

/* Runs the model on one int8 input tensor ({up}_AOT_INPUT_BYTES bytes, layout as the .tflite's
 * input) into output ({up}_AOT_OUTPUT_BYTES bytes). arena: {up}_AOT_ARENA_SIZE bytes, 16-byte
 * aligned, contents not kept between calls. Returns 0, or 1 + the index of the layer whose
 * CMSIS-NN call reported an error. input and output may be the arena's own slots
 * (arena + {up}_AOT_INPUT_OFFSET, arena + {up}_AOT_OUTPUT_OFFSET): no copy, no extra RAM. */
int {ident}_invoke(const int8_t *input, int8_t *output, void *arena);

#ifdef __cplusplus
}}
#endif

#endif /* {up}_AOT_H_ */
"""


def source(ident: str, g: AotGraph, layers: list[Layer], plan: Plan, note: str) -> str:
    up = ident.upper()
    lines = [
        f'/* {ident}_aot.c: model "{ident}" as plain C99 calling CMSIS-NN (ppgedge). {note}',
        " * One call per layer, each the CMSIS-NN function TFLite Micro's CMSIS-NN kernel calls",
        " * for that layer, with the parameters its Prepare computes. Do not edit; regenerate. */",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "#include <string.h>",
        "",
        '#include "arm_nnfunctions.h"',
        f'#include "{ident}_aot.h"',
        "",
        "#if defined(__GNUC__)",
        "#define PPGEDGE_AOT_ALIGN __attribute__((aligned(16)))",
        "#else",
        "#define PPGEDGE_AOT_ALIGN",
        "#endif",
        "#ifndef PPGEDGE_AOT_LAYER_HOOK",
        "#define PPGEDGE_AOT_LAYER_HOOK(i)",
        "#endif",
    ]
    if any(layer.op.name == "MEAN" for layer in layers):
        lines.append(MEAN_C)
    for layer in layers:
        if layer.consts:
            lines.append(f"\n/* layer {layer.op.index}: {layer.op.name} -> {layer.kernel} */")
            lines += layer.consts
    body = [f"int {ident}_invoke(const int8_t *input, int8_t *output, void *arena)", "{"]
    body.append("    int8_t *const a = (int8_t *)arena;")
    if plan.scratch:
        body.append("    cmsis_nn_context ctx;")
    if any("&no_ctx" in layer.call for layer in layers):
        body.append("    const cmsis_nn_context no_ctx = {NULL, 0};")
    if not any(plan.pointer(g, t) == "input" for layer in layers for t in layer.op.inputs):
        body.append("    (void)input;")
    for layer in layers:
        op = layer.op
        body.append(f"    /* layer {op.index}: {op.name} -> {layer.kernel} */")
        body.append(f"    PPGEDGE_AOT_LAYER_HOOK({op.index});")
        if op.index in plan.scratch:
            body.append(f"    ctx.buf = a + {plan.scratch[op.index]};")
            body.append(f"    ctx.size = {layer.scratch};")
        ptrs = {
            f"t{t}": plan.pointer(g, t)
            for t in (*op.inputs, *op.outputs)
            if t >= 0 and g.tensors[t].data is None
        }
        if not layer.call:
            if op.index in plan.copies:
                src, dst = op.inputs[0], op.outputs[0]
                body.append(f"    memcpy({ptrs[f't{dst}']}, {ptrs[f't{src}']}, "
                            f"{g.tensors[dst].bytes});")  # fmt: skip
            continue
        call = Template(layer.call).substitute(ptrs)
        if call.startswith(("arm_softmax_s8", "ppgedge_mean_s8")):
            body.append(f"    {call}")
        else:
            body.append(f"    if ({call[:-1]} != ARM_CMSIS_NN_SUCCESS) {{")
            body.append(f"        return {op.index + 1};")
            body.append("    }")
    body.append(f"    PPGEDGE_AOT_LAYER_HOOK({len(layers)});")
    body += ["    return 0;", "}"]
    if not any("a + " in line for line in body[3:]):
        body[2] = "    (void)arena;"
    lines.append("")
    lines += body
    del up
    return "\n".join(lines) + "\n"
