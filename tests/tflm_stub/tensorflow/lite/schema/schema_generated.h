// Test-only stand-in (see tests/tflm_stub/README.md): tflite::Model and tflite::GetModel as
// declared in tflite-micro's tensorflow/lite/schema/schema_generated.h.
#ifndef PPGEDGE_STUB_TENSORFLOW_LITE_SCHEMA_SCHEMA_GENERATED_H_
#define PPGEDGE_STUB_TENSORFLOW_LITE_SCHEMA_SCHEMA_GENERATED_H_

#include <cstdint>

namespace tflite {

struct Model {
  uint32_t version() const;
};

const tflite::Model* GetModel(const void* buf);

}  // namespace tflite

#endif  // PPGEDGE_STUB_TENSORFLOW_LITE_SCHEMA_SCHEMA_GENERATED_H_
