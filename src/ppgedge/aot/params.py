"""Prepare-time parameters, computed at export exactly as TFLite Micro's kernels compute them.

Each function names the TFLM routine it reproduces (tensorflow/lite/kernels/kernel_util.cc,
internal/quantization_util.cc, micro/kernels/*_common.cc at the vendored pin): scales are the
float32 values of the flatbuffer, promoted to double where TFLM promotes them, so every
multiplier and shift is bit-identical to what the interpreter computes at AllocateTensors.
"""

from __future__ import annotations

import math

import numpy as np

from ppgedge.compress.integer_reference import quantize_multiplier
from ppgedge.export.arena import conv_padding

INT8_MIN, INT8_MAX = -128, 127
# ActivationFunctionType in the schema
ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6 = 0, 1, 2, 3


def _round_away(x: float) -> int:
    """``TfLiteRound`` (std::round): half away from zero."""
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def activation_range(act: int, scale: float, zero_point: int) -> tuple[int, int] | None:
    """``CalculateActivationRangeQuantized`` for int8 (None for an activation TFLM refuses):
    each bound is zero_point + round(float32(f / scale))."""

    def q(f: float) -> int:
        return zero_point + _round_away(float(np.float32(f) / np.float32(scale)))

    if act == ACT_NONE:
        return INT8_MIN, INT8_MAX
    if act == ACT_RELU:
        return max(INT8_MIN, q(0.0)), INT8_MAX
    if act == ACT_RELU6:
        return max(INT8_MIN, q(0.0)), min(INT8_MAX, q(6.0))
    if act == ACT_RELU_N1_TO_1:
        return max(INT8_MIN, q(-1.0)), min(INT8_MAX, q(1.0))
    return None


def per_channel(input_scale: float, filter_scales: tuple[float, ...], output_scale: float,
                channels: int) -> tuple[list[int], list[int]]:  # fmt: skip
    """``PopulateConvolutionQuantizationParams`` (and FC's per-channel loop): per channel,
    double(s_in) * double(s_w[c]) / double(s_out); one filter scale serves every channel."""
    mults, shifts = [], []
    for c in range(channels):
        s_w = filter_scales[c] if len(filter_scales) > 1 else filter_scales[0]
        m, s = quantize_multiplier(float(input_scale) * float(s_w) / float(output_scale))
        mults.append(m)
        shifts.append(s)
    return mults, shifts


def fc_per_tensor(input_scale: float, filter_scale: float, output_scale: float
                  ) -> tuple[int, int]:  # fmt: skip
    """``GetQuantizedConvolutionMultipler``: the product s_in * s_w in float32, then double."""
    product = float(np.float32(input_scale) * np.float32(filter_scale))
    return quantize_multiplier(product / float(output_scale))


def add_params(s1: float, s2: float, s_out: float) -> dict[str, int]:
    """cmsis_nn/add.cc ``CalculateOpData`` for int8: left shift 20, both inputs rescaled to
    twice the larger input scale (``QuantizeMultiplierSmallerThanOneExp``)."""
    left_shift = 20
    twice_max = 2 * float(max(np.float32(s1), np.float32(s2)))
    m1, sh1 = quantize_multiplier(float(s1) / twice_max)
    m2, sh2 = quantize_multiplier(float(s2) / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << left_shift) * float(s_out)))
    return {"m1": m1, "s1": sh1, "m2": m2, "s2": sh2, "mo": mo, "so": sho, "left": left_shift}


def mean_params(input_scale: float, output_scale: float) -> tuple[int, int]:
    """reduce_common.cc ``PrepareMeanOrSumHelper``: QuantizeMultiplier(s_in / s_out); the
    1/n folding happens at run time in ``QuantizedMeanOrSum`` (emitted as constants here)."""
    return quantize_multiplier(float(input_scale) / float(output_scale))


def mean_fold(multiplier: int, shift: int, n: int) -> tuple[int, int]:
    """``QuantizedMeanOrSum``'s folding of 1/n into the multiplier (the same integer steps)."""
    up = min(n.bit_length() - 1, 32, 31 + shift)
    return int((multiplier << up) // n), shift - up


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """softmax_common.cc for int8 -> int8: ``PreprocessSoftmaxScaling`` (5 integer bits,
    double-rounding build) and ``CalculateInputRadius``: (multiplier, left shift, diff_min)."""
    bits = 5
    real = min(float(beta) * float(input_scale) * (1 << (31 - bits)), float((1 << 31) - 1))
    mult, shift = quantize_multiplier(real)
    radius = math.floor(((1 << bits) - 1) * (1 << (31 - bits)) / (1 << shift))
    return mult, shift, -radius


__all__ = [
    "activation_range", "add_params", "conv_padding", "fc_per_tensor", "mean_fold",
    "mean_params", "per_channel", "softmax_params",
]  # fmt: skip
