"""Ahead-of-time C backend: an int8 .tflite as plain C99 calling CMSIS-NN, no interpreter."""
