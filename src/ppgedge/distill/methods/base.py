"""The distiller interface: one small class per method, one forward that returns its losses.

As in mdistiller, a distiller sees the student's and the teacher's outputs for a batch (logits,
and feature maps when ``needs_features``) plus the ground truth, and returns named loss terms;
``"loss"`` is the total that is minimised, the others are logged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Distiller(nn.Module):
    name: str = ""
    needs_features: bool = False  # feature maps from both nets: the teacher must run online

    def forward(
        self,
        student_logits: torch.Tensor,  # (B, 180)
        teacher_logits: torch.Tensor,  # (B, 180), no gradient
        bpm: torch.Tensor,  # (B,) ground-truth heart rate
        *,
        epoch: int = 0,
        student_features: list[torch.Tensor] | None = None,  # each (B, C, 1, T) or (B, C)
        teacher_features: list[torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def hparams(self) -> dict[str, Any]:
        """Hyper-parameters, recorded in the student's checkpoint."""
        return {}
