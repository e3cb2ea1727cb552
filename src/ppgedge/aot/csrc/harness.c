/* harness.c: runs the AOT-compiled model "${id}" and reports what it computed (ppgedge).
 *
 * Generated from ppgedge/aot/csrc/harness.c. Built for the host (plain stdio) or for a Cortex-M
 * core in qemu-system-arm (newlib semihosting, PPGEDGE_SEMIHOSTING). Same files as the TFLite
 * Micro harness (ppgedge/firmware/csrc/harness.cc) so one reader serves both:
 * in:  "PPGI" u32 version, u32 n_windows, u32 item_bytes, u32 arena_size (ignored), then the
 *      items (PPGEDGE_RAW: float32 raw windows, channel-major; else int8 input tensors)
 * out: "PPGO" u32 version, u32 status, u32 arena_size, u32 arena_used, u32 reserved,
 *      u32 n_layers, u32 stack_used, u32 input_bytes, u32 output_bytes, u32 n_windows, then per
 *      window: int8 input tensor, int8 output tensor, float32 decoded BPM (0 without PPGEDGE_RAW)
 * ppgedge_mark() brackets preprocessing, ${id}_invoke and decoding (6 marks per window). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "${id}_aot.h"
#if PPGEDGE_RAW
#include "${id}_config.h"
#include "${id}_preprocess.h"
#endif

#ifndef PPGEDGE_ITEM_BYTES
#error "PPGEDGE_ITEM_BYTES (bytes of one input item) must be defined"
#endif

#if defined(__GNUC__)
#define PPGEDGE_NOINLINE __attribute__((noinline, used))
#define PPGEDGE_ALIGNED __attribute__((aligned(16)))
#else
#define PPGEDGE_NOINLINE
#define PPGEDGE_ALIGNED
#endif

PPGEDGE_NOINLINE void ppgedge_mark(void);
PPGEDGE_NOINLINE void ppgedge_mark(void)
{
#if defined(__GNUC__)
    __asm__ volatile("" ::: "memory");
#endif
}

static uint8_t g_arena[${ID}_AOT_ARENA_SIZE + 16] PPGEDGE_ALIGNED;
static uint32_t g_item[(PPGEDGE_ITEM_BYTES + 3) / 4];
static int8_t g_input[${ID}_AOT_INPUT_BYTES] PPGEDGE_ALIGNED;
static int8_t g_output[${ID}_AOT_OUTPUT_BYTES] PPGEDGE_ALIGNED;

#ifdef PPGEDGE_SEMIHOSTING
extern uint32_t __stack_limit__;
#define PAINT 0xC5C5C5C5u
static void paint_stack(void)
{
    uint32_t here = 0;
    uint32_t *p = &__stack_limit__;
    uint32_t *top = &here - 64;
    while (p < top) {
        *p++ = PAINT;
    }
}
static uint32_t stack_used(uint32_t *top)
{
    uint32_t *p = &__stack_limit__;
    while (p < top && *p == PAINT) {
        ++p;
    }
    return (uint32_t)((uintptr_t)top - (uintptr_t)p);
}
#endif

static void put_u32(FILE *f, uint32_t v) { fwrite(&v, sizeof v, 1, f); }
static int get_u32(FILE *f, uint32_t *v) { return fread(v, sizeof *v, 1, f) == 1; }

int main(void)
{
    uint32_t top_marker = 0;
    FILE *in, *out;
    char magic[4];
    uint32_t version = 0, n_windows = 0, item_bytes = 0, arena_size = 0, w;
    uint32_t status = 0, stack = 0;
    long status_at;
    int i;
#ifdef PPGEDGE_SEMIHOSTING
    paint_stack();
#endif
    in = fopen(PPGEDGE_IN, "rb");
    out = fopen(PPGEDGE_OUT, "wb");
    if (in == NULL || out == NULL) {
        return 2;
    }
    if (fread(magic, 1, 4, in) != 4 || memcmp(magic, "PPGI", 4) != 0 || !get_u32(in, &version) ||
        !get_u32(in, &n_windows) || !get_u32(in, &item_bytes) || !get_u32(in, &arena_size) ||
        item_bytes != PPGEDGE_ITEM_BYTES) {
        return 2;
    }
    fwrite("PPGO", 1, 4, out);
    put_u32(out, 1);
    status_at = ftell(out);
    for (i = 0; i < 8; ++i) {
        put_u32(out, 0);
    }
    put_u32(out, n_windows);
    for (w = 0; w < n_windows && status == 0; ++w) {
        float bpm = 0.0f;
        int pre = 0, invoked;
        if (fread(g_item, 1, item_bytes, in) != item_bytes) {
            status = 2;
            break;
        }
        ppgedge_mark();
#if PPGEDGE_RAW
        pre = ${id}_preprocess((const float *)(const void *)g_item, ${ID}_WINDOW_SAMPLES,
                               ${ID}_INPUT_CHANNELS, g_input);
#else
        memcpy(g_input, g_item, ${ID}_AOT_INPUT_BYTES);
#endif
        ppgedge_mark();
        ppgedge_mark();
        invoked = ${id}_invoke(g_input, g_output, g_arena);
        ppgedge_mark();
        ppgedge_mark();
#if PPGEDGE_RAW
        bpm = ${id}_postprocess(g_output);
#endif
        ppgedge_mark();
        if (pre != 0) {
            status = 6;
        }
        if (invoked != 0) {
            status = 5;
        }
        fwrite(g_input, 1, ${ID}_AOT_INPUT_BYTES, out);
        fwrite(g_output, 1, ${ID}_AOT_OUTPUT_BYTES, out);
        fwrite(&bpm, sizeof bpm, 1, out);
    }
#ifdef PPGEDGE_SEMIHOSTING
    stack = stack_used(&top_marker);
#endif
    (void)top_marker;
    fseek(out, status_at, SEEK_SET);
    put_u32(out, status);
    put_u32(out, ${ID}_AOT_ARENA_SIZE);
    put_u32(out, ${ID}_AOT_ARENA_SIZE);
    put_u32(out, 0);
    put_u32(out, 0);
    put_u32(out, stack);
    put_u32(out, ${ID}_AOT_INPUT_BYTES);
    put_u32(out, ${ID}_AOT_OUTPUT_BYTES);
    fclose(out);
    fclose(in);
    return (int)status;
}
