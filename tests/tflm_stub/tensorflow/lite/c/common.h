// Test-only stand-in (see tests/tflm_stub/README.md): the TfLite C types the bundle uses, as
// declared in tflite-micro's tensorflow/lite/core/c/common.h and c_api_types.h.
#ifndef PPGEDGE_STUB_TENSORFLOW_LITE_C_COMMON_H_
#define PPGEDGE_STUB_TENSORFLOW_LITE_C_COMMON_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum TfLiteStatus {
  kTfLiteOk = 0,
  kTfLiteError = 1,
} TfLiteStatus;

typedef enum {
  kTfLiteNoType = 0,
  kTfLiteFloat32 = 1,
  kTfLiteInt32 = 2,
  kTfLiteUInt8 = 3,
  kTfLiteInt64 = 4,
  kTfLiteString = 5,
  kTfLiteBool = 6,
  kTfLiteInt16 = 7,
  kTfLiteComplex64 = 8,
  kTfLiteInt8 = 9,
} TfLiteType;

typedef struct TfLiteIntArray {
  int size;
  int data[];
} TfLiteIntArray;

typedef struct TfLiteQuantizationParams {
  float scale;
  int32_t zero_point;
} TfLiteQuantizationParams;

typedef union TfLitePtrUnion {
  int32_t* i32;
  uint8_t* uint8;
  float* f;
  int16_t* i16;
  int8_t* int8;
  void* data;
} TfLitePtrUnion;

// The TF_LITE_STATIC_MEMORY (TFLite Micro) layout.
typedef struct TfLiteTensor {
  TfLiteQuantizationParams params;
  TfLitePtrUnion data;
  TfLiteIntArray* dims;
  size_t bytes;
  TfLiteType type;
  bool is_variable;
} TfLiteTensor;

#ifdef __cplusplus
}
#endif

#endif  // PPGEDGE_STUB_TENSORFLOW_LITE_C_COMMON_H_
