// model_main.cc: the smallest application around model "${id}" (ppgedge): resolver,
// interpreter, AllocateTensors, one Invoke on a zero input, a log line. Linked only to measure
// the flash of a firmware image for a model that has no ppgedge bundle (a foreign .tflite).
#include <cstdint>
#include <cstring>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tensorflow/lite/schema/schema_generated.h"

#include "${id}_model_data.h"
#include "${id}_op_resolver.h"

namespace {
alignas(16) uint8_t g_arena[PPGEDGE_ARENA_SIZE];
}  // namespace

int main() {
  tflite::InitializeTarget();
  const tflite::Model* model = tflite::GetModel(${id}_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) return 1;
  ${id}_op_resolver resolver;
  if (${id}_register_ops(resolver) != kTfLiteOk) return 1;
  tflite::MicroInterpreter interpreter(model, resolver, g_arena, sizeof(g_arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) return 1;
  TfLiteTensor* input = interpreter.input(0);
  memset(input->data.int8, 0, input->bytes);
  if (interpreter.Invoke() != kTfLiteOk) return 1;
  MicroPrintf("output[0] %d, arena used %u", interpreter.output(0)->data.int8[0],
              static_cast<unsigned>(interpreter.arena_used_bytes()));
  return 0;
}
