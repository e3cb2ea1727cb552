// Test-only stand-in (see tests/tflm_stub/README.md): tflite-micro's system_setup.h.
#ifndef PPGEDGE_STUB_TENSORFLOW_LITE_MICRO_SYSTEM_SETUP_H_
#define PPGEDGE_STUB_TENSORFLOW_LITE_MICRO_SYSTEM_SETUP_H_

namespace tflite {
void InitializeTarget();
}  // namespace tflite

#endif  // PPGEDGE_STUB_TENSORFLOW_LITE_MICRO_SYSTEM_SETUP_H_
