/* tracker_main.c: runs a bundle's C tracker over window sequences from a file (ppgedge).
 *
 * Input "tracker.in": uint32 n, then n records of (uint8 reset, int8 logits[180]); a record
 * with reset = 1 starts a new sequence (a new recording or a gap). Output "tracker.out": per
 * window int32 bpm and int32 margin, then uint32 sizeof(the state). The same file runs on the
 * host (gcc) and, linked with semihosting, in QEMU, where ppgedge_mark() brackets each update
 * so the counting plugin gives instructions per update. The tracker's identifier is "trk". */
#include <stdint.h>
#include <stdio.h>

#include "trk_tracker.h"

#ifdef __GNUC__
__attribute__((noinline, used))
#endif
void ppgedge_mark(void) {
    __asm__ volatile("" ::: "memory");
}

static trk_tracker_t g_state;

static int put_i32(FILE *f, int32_t v) {
    uint8_t b[4];
    b[0] = (uint8_t)((uint32_t)v & 0xFFu);
    b[1] = (uint8_t)(((uint32_t)v >> 8) & 0xFFu);
    b[2] = (uint8_t)(((uint32_t)v >> 16) & 0xFFu);
    b[3] = (uint8_t)(((uint32_t)v >> 24) & 0xFFu);
    return fwrite(b, 1, 4, f) == 4;
}

int main(void) {
    FILE *in = fopen("tracker.in", "rb");
    FILE *out = fopen("tracker.out", "wb");
    uint8_t head[4];
    uint8_t rec[1 + TRK_TRACKER_N_CLASSES];
    uint32_t n, i;
    if (in == NULL || out == NULL || fread(head, 1, 4, in) != 4) {
        return 2;
    }
    n = (uint32_t)head[0] | ((uint32_t)head[1] << 8) | ((uint32_t)head[2] << 16) |
        ((uint32_t)head[3] << 24);
    trk_tracker_reset(&g_state);
    for (i = 0; i < n; ++i) {
        int32_t margin = 0;
        int bpm;
        if (fread(rec, 1, sizeof rec, in) != sizeof rec) {
            return 2;
        }
        if (rec[0]) {
            trk_tracker_reset(&g_state);
        }
        ppgedge_mark();
        bpm = trk_tracker_update(&g_state, (const int8_t *)(rec + 1), TRK_TRACKER_N_CLASSES,
                                 &margin);
        ppgedge_mark();
        if (!put_i32(out, bpm) || !put_i32(out, margin)) {
            return 2;
        }
    }
    put_i32(out, (int32_t)sizeof g_state);
    fclose(out);
    fclose(in);
    return 0;
}
