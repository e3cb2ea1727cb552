/* main.c: the AOT firmware of model "${id}" as shipped (ppgedge): one window through the
 * bundle's C preprocessing, ${id}_invoke and the decoder, no interpreter. The linked image's
 * size is the AOT flash and RAM figure. Generated from ppgedge/aot/csrc/main.c. */
#include <stdint.h>

#include "${id}_aot.h"
#if PPGEDGE_RAW
#include "${id}_config.h"
#include "${id}_preprocess.h"
#endif
#if PPGEDGE_TRACKER
#include "${id}_tracker.h"
#endif

#if defined(__GNUC__)
#define PPGEDGE_ALIGNED __attribute__((aligned(16)))
#else
#define PPGEDGE_ALIGNED
#endif

static uint8_t g_arena[${ID}_AOT_ARENA_SIZE] PPGEDGE_ALIGNED;
#if PPGEDGE_RAW
static float g_window[${ID}_INPUT_CHANNELS * ${ID}_WINDOW_SAMPLES];
#endif
volatile float ppgedge_result;
#if PPGEDGE_TRACKER
/* the temporal tracker's state: reset at start-up, a new recording or after a dropped window */
static ${id}_tracker_t g_tracker;
volatile int ppgedge_tracked;
volatile int32_t ppgedge_margin;
#endif

int main(void)
{
    /* the input and output tensors in their arena slots, as TFLite Micro keeps them */
    int8_t *const g_input = (int8_t *)(g_arena + ${ID}_AOT_INPUT_OFFSET);
    int8_t *const g_output = (int8_t *)(g_arena + ${ID}_AOT_OUTPUT_OFFSET);
#if PPGEDGE_TRACKER
    int32_t margin = 0;
    ${id}_tracker_reset(&g_tracker);
#endif
#if PPGEDGE_RAW
    if (${id}_preprocess(g_window, ${ID}_WINDOW_SAMPLES, ${ID}_INPUT_CHANNELS, g_input) !=
        ${ID}_PREPROCESS_OK) {
        return 1;
    }
#endif
    if (${id}_invoke(g_input, g_output, g_arena) != 0) {
        return 1;
    }
#if PPGEDGE_RAW
    ppgedge_result = ${id}_postprocess(g_output);
#else
    ppgedge_result = (float)g_output[0];
#endif
#if PPGEDGE_TRACKER
    /* per window, one hop apart: the tracked heart rate and its confidence margin */
    ppgedge_tracked = ${id}_tracker_update(&g_tracker, g_output, ${ID}_TRACKER_N_CLASSES, &margin);
    ppgedge_margin = margin;
    if (ppgedge_tracked == ${ID}_TRACKER_BAD_INPUT) {
        return 1;
    }
#endif
    return 0;
}
