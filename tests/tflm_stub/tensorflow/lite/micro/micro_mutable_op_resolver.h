// Test-only stand-in (see tests/tflm_stub/README.md): tflite::MicroMutableOpResolver<N> with
// every builtin Add* method of tflite-micro's micro_mutable_op_resolver.h (commit 90b983c2):
// same names, same default argument (the op's Register_* function), declarations only.
#ifndef PPGEDGE_STUB_TENSORFLOW_LITE_MICRO_MICRO_MUTABLE_OP_RESOLVER_H_
#define PPGEDGE_STUB_TENSORFLOW_LITE_MICRO_MICRO_MUTABLE_OP_RESOLVER_H_

#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_op_resolver.h"

namespace tflite {

TFLMRegistration Register_ABS();
TFLMRegistration Register_ADD();
TFLMRegistration Register_ADD_N();
TFLMRegistration Register_ARG_MAX();
TFLMRegistration Register_ARG_MIN();
TFLMRegistration Register_ASSIGN_VARIABLE();
TFLMRegistration Register_AVERAGE_POOL_2D();
TFLMRegistration Register_BATCH_MATMUL();
TFLMRegistration Register_BATCH_TO_SPACE_ND();
TFLMRegistration Register_BROADCAST_ARGS();
TFLMRegistration Register_BROADCAST_TO();
TFLMRegistration Register_CALL_ONCE();
TFLMRegistration Register_CAST();
TFLMRegistration Register_CEIL();
TFLMRegistration Register_CONCATENATION();
TFLMRegistration Register_CONV_2D();
TFLMRegistration Register_COS();
TFLMRegistration Register_CUMSUM();
TFLMRegistration Register_DEPTH_TO_SPACE();
TFLMRegistration Register_DEPTHWISE_CONV_2D();
TFLMRegistration Register_DEQUANTIZE();
TFLMRegistration Register_DIV();
TFLMRegistration Register_DYNAMIC_UPDATE_SLICE();
TFLMRegistration Register_ELU();
TFLMRegistration Register_EMBEDDING_LOOKUP();
TFLMRegistration Register_EQUAL();
TFLMRegistration Register_EXP();
TFLMRegistration Register_EXPAND_DIMS();
TFLMRegistration Register_FILL();
TFLMRegistration Register_FLOOR();
TFLMRegistration Register_FLOOR_DIV();
TFLMRegistration Register_FLOOR_MOD();
TFLMRegistration Register_FULLY_CONNECTED();
TFLMRegistration Register_GATHER();
TFLMRegistration Register_GATHER_ND();
TFLMRegistration Register_GREATER();
TFLMRegistration Register_GREATER_EQUAL();
TFLMRegistration Register_HARD_SWISH();
TFLMRegistration Register_IF();
TFLMRegistration Register_L2_NORMALIZATION();
TFLMRegistration Register_L2_POOL_2D();
TFLMRegistration Register_LEAKY_RELU();
TFLMRegistration Register_LESS();
TFLMRegistration Register_LESS_EQUAL();
TFLMRegistration Register_LOG();
TFLMRegistration Register_LOGICAL_AND();
TFLMRegistration Register_LOGICAL_NOT();
TFLMRegistration Register_LOGICAL_OR();
TFLMRegistration Register_LOGISTIC();
TFLMRegistration Register_LOG_SOFTMAX();
TFLMRegistration Register_MAXIMUM();
TFLMRegistration Register_MAX_POOL_2D();
TFLMRegistration Register_MEAN();
TFLMRegistration Register_MINIMUM();
TFLMRegistration Register_MIRROR_PAD();
TFLMRegistration Register_MUL();
TFLMRegistration Register_NEG();
TFLMRegistration Register_NOT_EQUAL();
TFLMRegistration Register_PACK();
TFLMRegistration Register_PAD();
TFLMRegistration Register_PADV2();
TFLMRegistration Register_PRELU();
TFLMRegistration Register_QUANTIZE();
TFLMRegistration Register_READ_VARIABLE();
TFLMRegistration Register_REDUCE_ALL();
TFLMRegistration Register_REDUCE_MAX();
TFLMRegistration Register_REDUCE_MIN();
TFLMRegistration Register_RELU();
TFLMRegistration Register_RELU6();
TFLMRegistration Register_RESHAPE();
TFLMRegistration Register_RESIZE_BILINEAR();
TFLMRegistration Register_RESIZE_NEAREST_NEIGHBOR();
TFLMRegistration Register_REVERSE_V2();
TFLMRegistration Register_ROUND();
TFLMRegistration Register_RSQRT();
TFLMRegistration Register_SELECT_V2();
TFLMRegistration Register_SHAPE();
TFLMRegistration Register_SIN();
TFLMRegistration Register_SLICE();
TFLMRegistration Register_SOFTMAX();
TFLMRegistration Register_SPACE_TO_BATCH_ND();
TFLMRegistration Register_SPACE_TO_DEPTH();
TFLMRegistration Register_SPLIT();
TFLMRegistration Register_SPLIT_V();
TFLMRegistration Register_SQRT();
TFLMRegistration Register_SQUARE();
TFLMRegistration Register_SQUARED_DIFFERENCE();
TFLMRegistration Register_SQUEEZE();
TFLMRegistration Register_STRIDED_SLICE();
TFLMRegistration Register_SUB();
TFLMRegistration Register_SUM();
TFLMRegistration Register_SVDF();
TFLMRegistration Register_TANH();
TFLMRegistration Register_TRANSPOSE();
TFLMRegistration Register_TRANSPOSE_CONV();
TFLMRegistration Register_UNIDIRECTIONAL_SEQUENCE_LSTM();
TFLMRegistration Register_UNPACK();
TFLMRegistration Register_VAR_HANDLE();
TFLMRegistration Register_WHILE();
TFLMRegistration Register_ZEROS_LIKE();

template <unsigned int tOpCount>
class MicroMutableOpResolver : public MicroOpResolver {
 public:
  explicit MicroMutableOpResolver() {}

  TfLiteStatus AddAbs(
      const TFLMRegistration& registration = Register_ABS());
  TfLiteStatus AddAdd(
      const TFLMRegistration& registration = Register_ADD());
  TfLiteStatus AddAddN(
      const TFLMRegistration& registration = Register_ADD_N());
  TfLiteStatus AddArgMax(
      const TFLMRegistration& registration = Register_ARG_MAX());
  TfLiteStatus AddArgMin(
      const TFLMRegistration& registration = Register_ARG_MIN());
  TfLiteStatus AddAssignVariable(
      const TFLMRegistration& registration = Register_ASSIGN_VARIABLE());
  TfLiteStatus AddAveragePool2D(
      const TFLMRegistration& registration = Register_AVERAGE_POOL_2D());
  TfLiteStatus AddBatchMatMul(
      const TFLMRegistration& registration = Register_BATCH_MATMUL());
  TfLiteStatus AddBatchToSpaceNd(
      const TFLMRegistration& registration = Register_BATCH_TO_SPACE_ND());
  TfLiteStatus AddBroadcastArgs(
      const TFLMRegistration& registration = Register_BROADCAST_ARGS());
  TfLiteStatus AddBroadcastTo(
      const TFLMRegistration& registration = Register_BROADCAST_TO());
  TfLiteStatus AddCallOnce(
      const TFLMRegistration& registration = Register_CALL_ONCE());
  TfLiteStatus AddCast(
      const TFLMRegistration& registration = Register_CAST());
  TfLiteStatus AddCeil(
      const TFLMRegistration& registration = Register_CEIL());
  TfLiteStatus AddConcatenation(
      const TFLMRegistration& registration = Register_CONCATENATION());
  TfLiteStatus AddConv2D(
      const TFLMRegistration& registration = Register_CONV_2D());
  TfLiteStatus AddCos(
      const TFLMRegistration& registration = Register_COS());
  TfLiteStatus AddCumSum(
      const TFLMRegistration& registration = Register_CUMSUM());
  TfLiteStatus AddDepthToSpace(
      const TFLMRegistration& registration = Register_DEPTH_TO_SPACE());
  TfLiteStatus AddDepthwiseConv2D(
      const TFLMRegistration& registration = Register_DEPTHWISE_CONV_2D());
  TfLiteStatus AddDequantize(
      const TFLMRegistration& registration = Register_DEQUANTIZE());
  TfLiteStatus AddDiv(
      const TFLMRegistration& registration = Register_DIV());
  TfLiteStatus AddDynamicUpdateSlice();
  TfLiteStatus AddElu(
      const TFLMRegistration& registration = Register_ELU());
  TfLiteStatus AddEmbeddingLookup(
      const TFLMRegistration& registration = Register_EMBEDDING_LOOKUP());
  TfLiteStatus AddEqual(
      const TFLMRegistration& registration = Register_EQUAL());
  TfLiteStatus AddExp(
      const TFLMRegistration& registration = Register_EXP());
  TfLiteStatus AddExpandDims(
      const TFLMRegistration& registration = Register_EXPAND_DIMS());
  TfLiteStatus AddFill(
      const TFLMRegistration& registration = Register_FILL());
  TfLiteStatus AddFloor(
      const TFLMRegistration& registration = Register_FLOOR());
  TfLiteStatus AddFloorDiv(
      const TFLMRegistration& registration = Register_FLOOR_DIV());
  TfLiteStatus AddFloorMod(
      const TFLMRegistration& registration = Register_FLOOR_MOD());
  TfLiteStatus AddFullyConnected(
      const TFLMRegistration& registration = Register_FULLY_CONNECTED());
  TfLiteStatus AddGather(
      const TFLMRegistration& registration = Register_GATHER());
  TfLiteStatus AddGatherNd(
      const TFLMRegistration& registration = Register_GATHER_ND());
  TfLiteStatus AddGreater(
      const TFLMRegistration& registration = Register_GREATER());
  TfLiteStatus AddGreaterEqual(
      const TFLMRegistration& registration = Register_GREATER_EQUAL());
  TfLiteStatus AddHardSwish(
      const TFLMRegistration& registration = Register_HARD_SWISH());
  TfLiteStatus AddIf(
      const TFLMRegistration& registration = Register_IF());
  TfLiteStatus AddL2Normalization(
      const TFLMRegistration& registration = Register_L2_NORMALIZATION());
  TfLiteStatus AddL2Pool2D(
      const TFLMRegistration& registration = Register_L2_POOL_2D());
  TfLiteStatus AddLeakyRelu(
      const TFLMRegistration& registration = Register_LEAKY_RELU());
  TfLiteStatus AddLess(
      const TFLMRegistration& registration = Register_LESS());
  TfLiteStatus AddLessEqual(
      const TFLMRegistration& registration = Register_LESS_EQUAL());
  TfLiteStatus AddLog(
      const TFLMRegistration& registration = Register_LOG());
  TfLiteStatus AddLogicalAnd(
      const TFLMRegistration& registration = Register_LOGICAL_AND());
  TfLiteStatus AddLogicalNot(
      const TFLMRegistration& registration = Register_LOGICAL_NOT());
  TfLiteStatus AddLogicalOr(
      const TFLMRegistration& registration = Register_LOGICAL_OR());
  TfLiteStatus AddLogistic(
      const TFLMRegistration& registration = Register_LOGISTIC());
  TfLiteStatus AddLogSoftmax(
      const TFLMRegistration& registration = Register_LOG_SOFTMAX());
  TfLiteStatus AddMaximum(
      const TFLMRegistration& registration = Register_MAXIMUM());
  TfLiteStatus AddMaxPool2D(
      const TFLMRegistration& registration = Register_MAX_POOL_2D());
  TfLiteStatus AddMean(
      const TFLMRegistration& registration = Register_MEAN());
  TfLiteStatus AddMinimum(
      const TFLMRegistration& registration = Register_MINIMUM());
  TfLiteStatus AddMirrorPad(
      const TFLMRegistration& registration = Register_MIRROR_PAD());
  TfLiteStatus AddMul(
      const TFLMRegistration& registration = Register_MUL());
  TfLiteStatus AddNeg(
      const TFLMRegistration& registration = Register_NEG());
  TfLiteStatus AddNotEqual(
      const TFLMRegistration& registration = Register_NOT_EQUAL());
  TfLiteStatus AddPack(
      const TFLMRegistration& registration = Register_PACK());
  TfLiteStatus AddPad(
      const TFLMRegistration& registration = Register_PAD());
  TfLiteStatus AddPadV2(
      const TFLMRegistration& registration = Register_PADV2());
  TfLiteStatus AddPrelu(
      const TFLMRegistration& registration = Register_PRELU());
  TfLiteStatus AddQuantize(
      const TFLMRegistration& registration = Register_QUANTIZE());
  TfLiteStatus AddReadVariable(
      const TFLMRegistration& registration = Register_READ_VARIABLE());
  TfLiteStatus AddReduceAll(
      const TFLMRegistration& registration = Register_REDUCE_ALL());
  TfLiteStatus AddReduceMax(
      const TFLMRegistration& registration = Register_REDUCE_MAX());
  TfLiteStatus AddReduceMin(
      const TFLMRegistration& registration = Register_REDUCE_MIN());
  TfLiteStatus AddRelu(
      const TFLMRegistration& registration = Register_RELU());
  TfLiteStatus AddRelu6(
      const TFLMRegistration& registration = Register_RELU6());
  TfLiteStatus AddReshape(
      const TFLMRegistration& registration = Register_RESHAPE());
  TfLiteStatus AddResizeBilinear(
      const TFLMRegistration& registration = Register_RESIZE_BILINEAR());
  TfLiteStatus AddResizeNearestNeighbor();
  TfLiteStatus AddReverseV2(
      const TFLMRegistration& registration = Register_REVERSE_V2());
  TfLiteStatus AddRound(
      const TFLMRegistration& registration = Register_ROUND());
  TfLiteStatus AddRsqrt(
      const TFLMRegistration& registration = Register_RSQRT());
  TfLiteStatus AddSelectV2(
      const TFLMRegistration& registration = Register_SELECT_V2());
  TfLiteStatus AddShape(
      const TFLMRegistration& registration = Register_SHAPE());
  TfLiteStatus AddSin(
      const TFLMRegistration& registration = Register_SIN());
  TfLiteStatus AddSlice(
      const TFLMRegistration& registration = Register_SLICE());
  TfLiteStatus AddSoftmax(
      const TFLMRegistration& registration = Register_SOFTMAX());
  TfLiteStatus AddSpaceToBatchNd(
      const TFLMRegistration& registration = Register_SPACE_TO_BATCH_ND());
  TfLiteStatus AddSpaceToDepth(
      const TFLMRegistration& registration = Register_SPACE_TO_DEPTH());
  TfLiteStatus AddSplit(
      const TFLMRegistration& registration = Register_SPLIT());
  TfLiteStatus AddSplitV(
      const TFLMRegistration& registration = Register_SPLIT_V());
  TfLiteStatus AddSqrt(
      const TFLMRegistration& registration = Register_SQRT());
  TfLiteStatus AddSquare(
      const TFLMRegistration& registration = Register_SQUARE());
  TfLiteStatus AddSquaredDifference(
      const TFLMRegistration& registration = Register_SQUARED_DIFFERENCE());
  TfLiteStatus AddSqueeze(
      const TFLMRegistration& registration = Register_SQUEEZE());
  TfLiteStatus AddStridedSlice(
      const TFLMRegistration& registration = Register_STRIDED_SLICE());
  TfLiteStatus AddSub(
      const TFLMRegistration& registration = Register_SUB());
  TfLiteStatus AddSum(
      const TFLMRegistration& registration = Register_SUM());
  TfLiteStatus AddSvdf(
      const TFLMRegistration& registration = Register_SVDF());
  TfLiteStatus AddTanh(
      const TFLMRegistration& registration = Register_TANH());
  TfLiteStatus AddTranspose(
      const TFLMRegistration& registration = Register_TRANSPOSE());
  TfLiteStatus AddTransposeConv(
      const TFLMRegistration& registration = Register_TRANSPOSE_CONV());
  TfLiteStatus AddUnidirectionalSequenceLSTM(
      const TFLMRegistration& registration = Register_UNIDIRECTIONAL_SEQUENCE_LSTM());
  TfLiteStatus AddUnpack(
      const TFLMRegistration& registration = Register_UNPACK());
  TfLiteStatus AddVarHandle(
      const TFLMRegistration& registration = Register_VAR_HANDLE());
  TfLiteStatus AddWhile(
      const TFLMRegistration& registration = Register_WHILE());
  TfLiteStatus AddZerosLike(
      const TFLMRegistration& registration = Register_ZEROS_LIKE());
};

}  // namespace tflite

#endif  // PPGEDGE_STUB_TENSORFLOW_LITE_MICRO_MICRO_MUTABLE_OP_RESOLVER_H_
