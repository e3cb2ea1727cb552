"""Distillation stage: teachers (any format), cached teacher outputs, and one class per method."""
