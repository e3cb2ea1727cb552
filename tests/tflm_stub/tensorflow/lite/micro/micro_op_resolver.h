// Test-only stand-in (see tests/tflm_stub/README.md): tflite-micro's micro_op_resolver.h and
// the TFLMRegistration it hands out.
#ifndef PPGEDGE_STUB_TENSORFLOW_LITE_MICRO_MICRO_OP_RESOLVER_H_
#define PPGEDGE_STUB_TENSORFLOW_LITE_MICRO_MICRO_OP_RESOLVER_H_

#include "tensorflow/lite/c/common.h"

namespace tflite {

struct TFLMRegistration {
  int32_t builtin_code;
  const char* custom_name;
};

class MicroOpResolver {
 public:
  virtual ~MicroOpResolver() {}
};

}  // namespace tflite

#endif  // PPGEDGE_STUB_TENSORFLOW_LITE_MICRO_MICRO_OP_RESOLVER_H_
