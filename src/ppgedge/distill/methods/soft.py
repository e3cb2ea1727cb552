"""Soft distillation (Hinton et al. 2015): match the teacher's softened class distribution.

At temperature T the teacher's probabilities over neighbouring BPM classes become visible, which
tells the student how far off a wrong class is; the T^2 factor keeps the gradient scale of the KD
term independent of T, so ``alpha`` means the same at every temperature.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ppgedge.distill.methods.base import Distiller
from ppgedge.train.objective import soft_target_loss


def soft_kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """KL(softmax(t/T) || softmax(s/T)) * T^2, averaged over the batch; the teacher is detached."""
    dtype = torch.promote_types(student_logits.dtype, torch.float32)  # half -> float32
    log_p_s = F.log_softmax(student_logits.to(dtype) / temperature, dim=1)
    log_p_t = F.log_softmax(teacher_logits.detach().to(dtype) / temperature, dim=1)
    kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
    return kl * temperature**2


class SoftDistiller(Distiller):
    """loss = kd + alpha * ce, kd = T^2 * KL(teacher_T || student_T), ce = ground-truth CE.

    The KD term has weight 1 and the ground truth is added with ``alpha`` (not the convex
    ``(1 - alpha) * kd + alpha * ce`` form), as in mdistiller's KD with ``ce_weight = alpha``.
    """

    name = "soft"

    def __init__(
        self, temperature: float = 4.0, alpha: float = 0.5, sigma_bpm: float = 1.5
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if sigma_bpm <= 0:
            raise ValueError(f"sigma_bpm must be > 0, got {sigma_bpm}")
        self.temperature = float(temperature)
        self.alpha = float(alpha)
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
        kd = soft_kd_loss(student_logits, teacher_logits, self.temperature)
        ce = soft_target_loss(student_logits, bpm, self.sigma_bpm)
        return {"loss": kd + self.alpha * ce, "kd": kd, "ce": ce}

    def hparams(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "alpha": self.alpha, "sigma_bpm": self.sigma_bpm}
