// Test-only stand-in (see tests/tflm_stub/README.md): the tflite::MicroInterpreter members the
// bundle calls, with the parameter lists of tflite-micro's micro_interpreter.h.
#ifndef PPGEDGE_STUB_TENSORFLOW_LITE_MICRO_MICRO_INTERPRETER_H_
#define PPGEDGE_STUB_TENSORFLOW_LITE_MICRO_MICRO_INTERPRETER_H_

#include <cstddef>
#include <cstdint>

#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

#define TFLITE_SCHEMA_VERSION (3)

namespace tflite {

class MicroResourceVariables;
class MicroProfilerInterface;

class MicroInterpreter {
 public:
  MicroInterpreter(const Model* model, const MicroOpResolver& op_resolver,
                   uint8_t* tensor_arena, size_t tensor_arena_size,
                   MicroResourceVariables* resource_variables = nullptr,
                   MicroProfilerInterface* profiler = nullptr,
                   bool preserve_all_tensors = false);
  ~MicroInterpreter();

  TfLiteStatus AllocateTensors();
  TfLiteStatus Invoke();
  TfLiteTensor* input(size_t index);
  TfLiteTensor* output(size_t index);
  size_t arena_used_bytes() const;
};

}  // namespace tflite

#endif  // PPGEDGE_STUB_TENSORFLOW_LITE_MICRO_MICRO_INTERPRETER_H_
