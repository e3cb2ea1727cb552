"""Epoch counts that mean the same amount of training on small and large datasets.

An epoch on 1,000 windows is 16 optimiser steps; on the synthetic default's 3,300 it is 52. The
chain's epoch and patience defaults were set on the larger one, so on a small real dataset the
teacher, the student, the pruning fine-tunes and QAT all stopped after a third of the steps
(and early stopping after a third of the patience). :func:`epoch_scale` is the factor that
restores the steps; every stage multiplies its configured epochs and patience by it.
"""

from __future__ import annotations

import math

# About the synthetic default's training windows (11 subjects x 297): the size the chain's
# epoch and patience defaults were tuned on, so its runs are unchanged (factor 1).
REFERENCE_WINDOWS = 3000
MAX_SCALE = 8.0  # a handful of windows must not turn 20 epochs into thousands


def epoch_scale(n_train_windows: int, reference_windows: int = REFERENCE_WINDOWS) -> float:
    """max(1, reference / training windows), capped at :data:`MAX_SCALE`; 1 when
    ``reference_windows`` is 0 (scaling off)."""
    if reference_windows <= 0 or n_train_windows <= 0:
        return 1.0
    return float(min(MAX_SCALE, max(1.0, reference_windows / n_train_windows)))


def scaled(epochs: int, factor: float) -> int:
    """``epochs`` x ``factor``, rounded up (0 stays 0: a disabled fine-tune stays off)."""
    return int(math.ceil(epochs * factor - 1e-9)) if epochs > 0 else 0
