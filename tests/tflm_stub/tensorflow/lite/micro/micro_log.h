// Test-only stand-in (see tests/tflm_stub/README.md): tflite-micro's micro_log.h.
#ifndef PPGEDGE_STUB_TENSORFLOW_LITE_MICRO_MICRO_LOG_H_
#define PPGEDGE_STUB_TENSORFLOW_LITE_MICRO_MICRO_LOG_H_

void MicroPrintf(const char* format, ...);

#endif  // PPGEDGE_STUB_TENSORFLOW_LITE_MICRO_MICRO_LOG_H_
