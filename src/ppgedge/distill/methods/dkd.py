"""Decoupled knowledge distillation (Zhao et al., CVPR 2022), the seed paper's strongest method.

Classic KD couples two signals: how sure the teacher is of the target (TCKD, a binary
target/non-target KL) and how it ranks the other classes (NCKD, a KL over the non-target classes
alone). In the classic loss NCKD is scaled down by (1 - p_target) of the teacher, so the better the
teacher, the less of its "dark knowledge" reaches the student; DKD weights the two independently
(NCKD strongly, beta = 8) and ramps both up linearly over the first epochs.

Target class for our 180 ordinal BPM classes: round(bpm) - 30, clamped to 0..179. Our extension,
``target_width_bpm``: classes within +-width BPM of the target are almost as right as the target
itself, so they can be put in the target group (for both the binary split of TCKD and the masking
of NCKD); NCKD then describes only the teacher's genuinely different alternatives (harmonics,
motion artefacts). ``0`` is the standard single-class formulation.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ppgedge.data.format import BPM_MIN
from ppgedge.distill.methods.base import Distiller
from ppgedge.models.bpm import N_CLASSES
from ppgedge.train.objective import soft_target_loss

DKD_TARGETS = ("gt", "teacher")
MASK_LOGIT = 1000.0  # subtracted from the (tempered) target logits before the NCKD softmax


def target_class(bpm: torch.Tensor) -> torch.Tensor:
    """(B,) BPM -> (B,) class index of the nearest whole BPM, clamped to the output range."""
    return (torch.round(bpm.float()) - BPM_MIN).long().clamp(0, N_CLASSES - 1)


def target_mask(target: torch.Tensor, n_classes: int, width: int = 0) -> torch.Tensor:
    """(B,) class indices -> (B, n_classes) bool, True within +-``width`` classes of the target."""
    classes = torch.arange(n_classes, device=target.device)
    return (classes[None, :] - target[:, None]).abs() <= width


def dkd_terms(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask: torch.Tensor,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(TCKD, NCKD), each a batch-mean KL(teacher || student) times T^2.

    ``mask`` (B, C) marks the target group; it needs at least one non-target class per row. The
    binary probabilities are computed as log-sum-exps (no log of a rounded-to-zero probability).
    """
    dtype = torch.promote_types(student_logits.dtype, torch.float32)  # half -> float32
    zs = student_logits.to(dtype) / temperature
    zt = teacher_logits.detach().to(dtype) / temperature

    def binary_log_probs(z: torch.Tensor) -> torch.Tensor:
        total = torch.logsumexp(z, dim=1)
        in_target = torch.logsumexp(z.masked_fill(~mask, float("-inf")), dim=1)
        non_target = torch.logsumexp(z.masked_fill(mask, float("-inf")), dim=1)
        return torch.stack([in_target - total, non_target - total], dim=1)

    t2 = temperature**2
    tckd = F.kl_div(
        binary_log_probs(zs), binary_log_probs(zt), reduction="batchmean", log_target=True
    )
    shift = MASK_LOGIT * mask.to(dtype)
    nckd = F.kl_div(
        F.log_softmax(zs - shift, dim=1),
        F.log_softmax(zt - shift, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return tckd * t2, nckd * t2


class DKDDistiller(Distiller):
    """loss = ce_weight * CE + min(epoch / warmup_epochs, 1) * (alpha * TCKD + beta * NCKD).

    CE is the ground-truth soft-target CE. ``target="teacher"`` takes the teacher's argmax class as
    the target instead of the reference BPM. The returned ``tckd`` and ``nckd`` are unweighted.
    """

    name = "dkd"

    def __init__(
        self,
        ce_weight: float = 1.0,
        alpha: float = 1.0,
        beta: float = 8.0,
        temperature: float = 4.0,
        warmup_epochs: int = 20,
        target: str = "gt",
        target_width_bpm: int = 0,
        sigma_bpm: float = 1.5,
    ) -> None:
        super().__init__()
        if min(ce_weight, alpha, beta) < 0:
            raise ValueError("ce_weight, alpha and beta must be >= 0")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
        if target not in DKD_TARGETS:
            raise ValueError(f"target must be one of {DKD_TARGETS}, got '{target}'")
        if (
            isinstance(target_width_bpm, bool)
            or not isinstance(target_width_bpm, int)
            or target_width_bpm < 0
        ):
            raise ValueError(f"target_width_bpm must be an integer >= 0, got {target_width_bpm}")
        if 2 * target_width_bpm + 1 >= N_CLASSES:
            raise ValueError(f"target_width_bpm {target_width_bpm} leaves no non-target classes")
        if sigma_bpm <= 0:
            raise ValueError(f"sigma_bpm must be > 0, got {sigma_bpm}")
        self.ce_weight = float(ce_weight)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.temperature = float(temperature)
        self.warmup_epochs = int(warmup_epochs)
        self.target = target
        self.target_width_bpm = int(target_width_bpm)
        self.sigma_bpm = float(sigma_bpm)

    def warmup(self, epoch: int) -> float:
        """KD-term weight at ``epoch`` (0-based): 0 at the start, 1 from ``warmup_epochs`` on."""
        if self.warmup_epochs == 0:
            return 1.0
        return min(max(epoch, 0) / self.warmup_epochs, 1.0)

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
        gt = self.target == "gt"
        target = target_class(bpm) if gt else teacher_logits.detach().argmax(dim=1)
        mask = target_mask(target, student_logits.shape[1], self.target_width_bpm)
        tckd, nckd = dkd_terms(student_logits, teacher_logits, mask, self.temperature)
        ce = soft_target_loss(student_logits, bpm, self.sigma_bpm)
        kd = self.warmup(epoch) * (self.alpha * tckd + self.beta * nckd)
        return {"loss": self.ce_weight * ce + kd, "ce": ce, "tckd": tckd, "nckd": nckd}

    def hparams(self) -> dict[str, Any]:
        return {
            "ce_weight": self.ce_weight,
            "alpha": self.alpha,
            "beta": self.beta,
            "temperature": self.temperature,
            "warmup_epochs": self.warmup_epochs,
            "target": self.target,
            "target_width_bpm": self.target_width_bpm,
            "sigma_bpm": self.sigma_bpm,
        }
