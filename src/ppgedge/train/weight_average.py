"""Weight averaging: an exponential moving average (EMA) of the weights over optimiser steps.

On a few thousand windows the weights at any one step carry the noise of the last batches, and
which epoch early stopping keeps is itself a draw: the motion benchmark's folds move by several
BPM between run seeds (docs/motion-benchmark.md). Averaging the weights along the trajectory
(Polyak averaging; the EMA that timm keeps beside every model) is a cheap way to a flatter,
less seed-dependent solution: validation and early stopping then look at the averaged weights,
and those are what training keeps. The average (buffers included, so batch-norm statistics
follow the averaged weights) is PyTorch's own ``torch.optim.swa_utils.AveragedModel``.
"""

from __future__ import annotations

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def averaged_model(model: nn.Module, decay: float) -> AveragedModel | None:
    """The EMA of ``model`` with ``decay`` per optimiser step (``None`` when 0: off); update
    it with ``update_parameters(model)`` after every step, evaluate ``.module``."""
    if decay == 0:
        return None
    if not 0 < decay < 1:
        raise ValueError(f"ema_decay must be in [0, 1), got {decay!r}")
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
