// harness.cc: runs model "${id}" in an emulator and reports what the device computed (ppgedge).
//
// Generated from ppgedge/firmware/csrc/harness.cc for one model; built with the model's bundle
// files, TFLite Micro + CMSIS-NN and newlib's semihosting (rdimon), and run in qemu-system-arm.
// Reads windows from the host file PPGEDGE_IN, writes outputs and measurements to PPGEDGE_OUT.
// Each phase (input, Invoke, every operator, decoding) is bracketed by calls to ppgedge_mark(),
// whose executions the instruction-counting QEMU plugin timestamps.
//
// in:  "PPGI" u32 version, u32 n_windows, u32 item_bytes, u32 arena_size (0: all of
//      PPGEDGE_ARENA_CAP; the host bisects on it, one emulator run per size), then n items
//      (PPGEDGE_RAW: float32 raw windows, channel-major; else int8 input tensors)
// out: "PPGO" u32 version, u32 status, u32 arena_size, u32 arena_used, u32 reserved,
//      u32 n_ops, u32 stack_used, u32 input_bytes, u32 output_bytes, u32 n_windows, then per
//      window: int8 input tensor, int8 output tensor, float32 decoded BPM (0 without PPGEDGE_RAW)
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>

#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"
#include "tensorflow/lite/schema/schema_generated.h"

#include "${id}_model_data.h"
#include "${id}_op_resolver.h"
#if PPGEDGE_RAW
#include "${id}_config.h"
#include "${id}_preprocess.h"
#endif

#ifndef PPGEDGE_ARENA_CAP
#error "PPGEDGE_ARENA_CAP (bytes of the largest arena to try) must be defined"
#endif
#ifndef PPGEDGE_ITEM_BYTES
#error "PPGEDGE_ITEM_BYTES (bytes of one input item) must be defined"
#endif

enum Status : uint32_t {
  kOk = 0,
  kBadInput = 2,
  kAllocate = 3,
  kTensor = 4,
  kInvoke = 5,
  kPreprocess = 6,
  kSchema = 7,
};

extern "C" __attribute__((noinline, used)) void ppgedge_mark(void) {
  __asm volatile("" ::: "memory");
}

extern "C" uint32_t __stack_limit__;

namespace {

alignas(16) uint8_t g_arena[PPGEDGE_ARENA_CAP];
alignas(4) uint8_t g_item[PPGEDGE_ITEM_BYTES];
int8_t g_input_now[PPGEDGE_ITEM_BYTES];

// TFLM's profiler hooks: a mark at the start and end of every operator while armed.
class MarkProfiler : public tflite::MicroProfilerInterface {
 public:
  bool armed = false;
  uint32_t events = 0;
  uint32_t BeginEvent(const char*) override {
    if (armed) {
      ++events;
      ppgedge_mark();
    }
    return 0;
  }
  void EndEvent(uint32_t) override {
    if (armed) ppgedge_mark();
  }
};

void Log(const char* s) { fputs(s, stderr); }

void PutU32(FILE* f, uint32_t v) { fwrite(&v, sizeof v, 1, f); }

bool GetU32(FILE* f, uint32_t* v) { return fread(v, sizeof *v, 1, f) == 1; }

// Paint the stack below the current frame so the deepest use can be read back at the end.
constexpr uint32_t kPaint = 0xC5C5C5C5u;
void PaintStack() {
  uint32_t here = 0;
  uint32_t* p = &__stack_limit__;
  uint32_t* top = &here - 64;
  while (p < top) *p++ = kPaint;
}
uint32_t StackUsed(uint32_t* top) {
  uint32_t* p = &__stack_limit__;
  while (p < top && *p == kPaint) ++p;
  return static_cast<uint32_t>(reinterpret_cast<uintptr_t>(top) - reinterpret_cast<uintptr_t>(p));
}

}  // namespace

int main() {
  uint32_t top_marker = 0;
  PaintStack();
  RegisterDebugLogCallback(Log);
  FILE* in = fopen(PPGEDGE_IN, "rb");
  FILE* out = fopen(PPGEDGE_OUT, "wb");
  if (in == nullptr || out == nullptr) return kBadInput;
  char magic[4];
  uint32_t version = 0, n_windows = 0, item_bytes = 0, arena_size = 0;
  if (fread(magic, 1, 4, in) != 4 || memcmp(magic, "PPGI", 4) != 0 || !GetU32(in, &version) ||
      !GetU32(in, &n_windows) || !GetU32(in, &item_bytes) || !GetU32(in, &arena_size) ||
      item_bytes != PPGEDGE_ITEM_BYTES || arena_size > sizeof(g_arena)) {
    return kBadInput;
  }
  if (arena_size == 0) arena_size = sizeof(g_arena);

  const tflite::Model* model = tflite::GetModel(${id}_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) return kSchema;
  // Placement new into static storage: no static destructors (they would need __dso_handle,
  // which -nostartfiles leaves out) and nothing on the measured stack.
  alignas(16) static uint8_t resolver_mem[sizeof(${id}_op_resolver)];
  alignas(16) static uint8_t profiler_mem[sizeof(MarkProfiler)];
  alignas(16) static uint8_t interpreter_mem[sizeof(tflite::MicroInterpreter)];
  auto& resolver = *new (resolver_mem) ${id}_op_resolver();
  if (${id}_register_ops(resolver) != kTfLiteOk) return kAllocate;
  auto& profiler = *new (profiler_mem) MarkProfiler();
  auto& interpreter = *new (interpreter_mem)
      tflite::MicroInterpreter(model, resolver, g_arena, arena_size, nullptr, &profiler);
  if (interpreter.AllocateTensors() != kTfLiteOk) return kAllocate;
  const uint32_t arena_used = static_cast<uint32_t>(interpreter.arena_used_bytes());
  TfLiteTensor* input = interpreter.input(0);
  TfLiteTensor* output = interpreter.output(0);
  if (input->type != kTfLiteInt8 || output->type != kTfLiteInt8) return kTensor;
  const size_t in_bytes = input->bytes, out_bytes = output->bytes;
#if PPGEDGE_RAW
  if (in_bytes != ${ID}_INPUT_BYTES) return kTensor;
#else
  if (in_bytes != PPGEDGE_ITEM_BYTES) return kTensor;
#endif

  fwrite("PPGO", 1, 4, out);
  PutU32(out, 1);
  const long status_at = ftell(out);
  for (int i = 0; i < 8; ++i) PutU32(out, 0);  // patched below
  PutU32(out, n_windows);

  uint32_t status = kOk;
  for (uint32_t w = 0; w < n_windows && status == kOk; ++w) {
    if (fread(g_item, 1, item_bytes, in) != item_bytes) {
      status = kBadInput;
      break;
    }
    float bpm = 0.0f;
    profiler.armed = true;
    ppgedge_mark();
#if PPGEDGE_RAW
    const int pre = ${id}_preprocess(reinterpret_cast<const float*>(g_item),
                                     ${ID}_WINDOW_SAMPLES, ${ID}_INPUT_CHANNELS,
                                     input->data.int8);
#else
    memcpy(input->data.int8, g_item, in_bytes);
    const int pre = 0;
#endif
    ppgedge_mark();
    // The planner may reuse the input tensor's memory during Invoke: keep a copy first.
    memcpy(g_input_now, input->data.int8, in_bytes);
    ppgedge_mark();
    const TfLiteStatus invoked = interpreter.Invoke();
    ppgedge_mark();
    ppgedge_mark();
#if PPGEDGE_RAW
    if (invoked == kTfLiteOk) bpm = ${id}_postprocess(output->data.int8);
#endif
    ppgedge_mark();
    profiler.armed = false;
    if (pre != 0) status = kPreprocess;
    if (invoked != kTfLiteOk) status = kInvoke;
    fwrite(g_input_now, 1, in_bytes, out);
    fwrite(output->data.int8, 1, out_bytes, out);
    fwrite(&bpm, sizeof bpm, 1, out);
  }
  const uint32_t n_ops = n_windows ? profiler.events / n_windows : 0;

  fseek(out, status_at, SEEK_SET);
  PutU32(out, status);
  PutU32(out, arena_size);
  PutU32(out, arena_used);
  PutU32(out, 0);
  PutU32(out, n_ops);
  PutU32(out, StackUsed(&top_marker));
  PutU32(out, static_cast<uint32_t>(in_bytes));
  PutU32(out, static_cast<uint32_t>(out_bytes));
  fclose(out);
  fclose(in);
  return static_cast<int>(status);
}
