"""Hard distillation: the teacher's argmax class as a one-hot label.

The cheapest form of distillation: the teacher only relabels the data (useful where its label is
cleaner than the ECG-derived reference, or on unlabelled windows). Nothing of the teacher's
uncertainty is passed on, which is why it is the baseline the softer methods are compared with.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ppgedge.distill.methods.base import Distiller
from ppgedge.train.objective import soft_target_loss


class HardDistiller(Distiller):
    """loss = weight * CE(student, argmax teacher) + (1 - weight) * ground-truth soft-target CE."""

    name = "hard"

    def __init__(self, weight: float = 0.5, sigma_bpm: float = 1.5) -> None:
        super().__init__()
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight must be in [0, 1], got {weight}")
        if sigma_bpm <= 0:
            raise ValueError(f"sigma_bpm must be > 0, got {sigma_bpm}")
        self.weight = float(weight)
        self.sigma_bpm = float(sigma_bpm)

    def forward(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor,
        bpm: torch.Tensor,
        *,
        epoch: int = 0,
        student_features: list[torch.Tensor] | None = None,
        teacher_features: list[torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        teacher_class = teacher_logits.detach().argmax(dim=1)
        kd = F.cross_entropy(student_logits, teacher_class)
        ce = soft_target_loss(student_logits, bpm, self.sigma_bpm)
        return {"loss": self.weight * kd + (1.0 - self.weight) * ce, "kd": kd, "ce": ce}

    def hparams(self) -> dict[str, Any]:
        return {"weight": self.weight, "sigma_bpm": self.sigma_bpm}
