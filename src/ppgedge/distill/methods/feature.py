"""Feature distillation: FitNets hints (Romero et al. 2015) or attention transfer (Zagoruyko &
Komodakis 2017), on top of a logit loss.

The logits say what the teacher concludes; intermediate maps say how it got there (which beats
in the window it locks on to, which motion it ignores). A small student cannot copy a wide
teacher's maps channel for channel, so each hinted student map goes through a learned 1x1
convolution + batch norm into the teacher's channel count (the adaptor, owned and trained by this
distiller, thrown away after training), then is linearly resampled in time to the teacher map's
length. Attention transfer instead matches where in time the energy of each map lies (channels
collapse, so no adaptor is needed).

Maps are (B, C, 1, T); MLP hidden vectors (B, C) are treated as (B, C, 1, 1). Pair weighting: the
hint (or attention) term is the mean over pairs, so its weight does not change with their number.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ppgedge.distill.methods.base import Distiller
from ppgedge.distill.methods.dkd import DKDDistiller
from ppgedge.distill.methods.soft import SoftDistiller
from ppgedge.train.objective import soft_target_loss

LOGIT_LOSSES = ("soft", "dkd", "none")


def default_pairs(n_student: int, n_teacher: int, k: int = 3) -> list[tuple[int, int]]:
    """Up to ``k`` (student index, teacher index) pairs at proportional depths.

    The last student map always pairs with the last teacher map; the others sit at evenly spaced
    student depths j/k (j = 1..k-1), each paired with the teacher map at the same relative depth.
    With a ResNet (stem + blocks) of 4 blocks and a teacher of 8 this pairs the ends of stages 1,
    3 and 4 of both. Duplicates (few maps, large k) are dropped, keeping the deeper pair.
    """
    if min(n_student, n_teacher, k) < 1:
        raise ValueError("n_student, n_teacher and k must be >= 1")
    if n_student == 1:
        return [(0, n_teacher - 1)]
    pairs: list[tuple[int, int]] = []
    used_s: set[int] = set()
    used_t: set[int] = set()
    for j in range(k, 0, -1):
        s = math.floor((n_student - 1) * j / k + 0.5)
        t = math.floor(s * (n_teacher - 1) / (n_student - 1) + 0.5)
        if s in used_s or t in used_t:
            continue
        used_s.add(s)
        used_t.add(t)
        pairs.append((s, t))
    return sorted(pairs)


def as_map(feature: torch.Tensor) -> torch.Tensor:
    """(B, C) -> (B, C, 1, 1); (B, C, T) -> (B, C, 1, T); (B, C, 1, T) unchanged."""
    if feature.dim() == 2:
        return feature[:, :, None, None]
    if feature.dim() == 3:
        return feature.unsqueeze(2)
    if feature.dim() == 4:
        return feature
    raise ValueError(f"feature of shape {tuple(feature.shape)}: expected (B, C) or (B, C, 1, T)")


def resample_time(x: torch.Tensor, length: int) -> torch.Tensor:
    """Linear interpolation of a (B, C, 1, T) map to T = ``length`` (a no-op when it matches)."""
    if x.shape[-1] == length and x.shape[-2] == 1:
        return x
    return F.interpolate(x, size=(1, length), mode="bilinear", align_corners=False)


def attention_map(feature: torch.Tensor, length: int) -> torch.Tensor:
    """(B, C, 1, T) -> (B, length): channel mean of f^2, resampled, unit L2 norm per sample."""
    energy = feature.float().pow(2).mean(dim=1, keepdim=True)
    return F.normalize(resample_time(energy, length).flatten(1), dim=1)


def attention_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean over batch and time of the squared difference of the normalised attention maps.

    This is the per-pair loss of the authors' code (and mdistiller's AT), whose weight
    beta = 1000 is our default ``at_weight``; the time-mean makes it scale like 1/T, which that
    weight was chosen for. Both maps are taken at the teacher map's length.
    """
    student, teacher = as_map(student), as_map(teacher).detach()
    length = teacher.shape[-1]
    return (attention_map(student, length) - attention_map(teacher, length)).pow(2).mean()


class FeatureDistiller(Distiller):
    """loss = logit loss + hint_weight * hint  (or + at_weight * at when ``attention``).

    ``logit``: "soft" (kd + alpha * CE, as SoftDistiller), "dkd" (DKDDistiller with
    ``temperature`` and ``dkd_kwargs``; its ``ce_weight`` replaces ``alpha``) or "none" (the
    ground-truth CE alone, FitNets' hint + label training). ``pairs`` maps student feature index
    -> teacher feature index (negative indices allowed); ``None`` uses :func:`default_pairs`.
    """

    name = "feature"
    needs_features = True

    def __init__(
        self,
        student_channels: list[int],
        teacher_channels: list[int],
        pairs: list[tuple[int, int]] | None = None,
        hint_weight: float = 1.0,
        logit: str = "soft",
        temperature: float = 4.0,
        alpha: float = 0.5,
        attention: bool = False,
        at_weight: float = 1000.0,
        dkd_kwargs: dict[str, Any] | None = None,
        sigma_bpm: float = 1.5,
    ) -> None:
        super().__init__()
        student_channels = [int(c) for c in student_channels]
        teacher_channels = [int(c) for c in teacher_channels]
        if (
            not student_channels
            or not teacher_channels
            or min(student_channels + teacher_channels) < 1
        ):
            raise ValueError("student_channels and teacher_channels must be non-empty, all >= 1")
        if logit not in LOGIT_LOSSES:
            raise ValueError(f"logit must be one of {LOGIT_LOSSES}, got '{logit}'")
        if min(hint_weight, at_weight) < 0:
            raise ValueError("hint_weight and at_weight must be >= 0")
        if sigma_bpm <= 0:
            raise ValueError(f"sigma_bpm must be > 0, got {sigma_bpm}")
        ns, nt = len(student_channels), len(teacher_channels)
        if pairs is None:
            pairs = default_pairs(ns, nt)
        resolved: list[tuple[int, int]] = []
        for pair in pairs:
            s, t = (int(i) for i in pair)
            if not (-ns <= s < ns and -nt <= t < nt):
                raise ValueError(
                    f"pair {tuple(pair)} out of range for {ns} student, {nt} teacher maps"
                )
            resolved.append((s % ns, t % nt))
        if not resolved:
            raise ValueError("pairs is empty: nothing to distil")
        self.student_channels = student_channels
        self.teacher_channels = teacher_channels
        self.pairs = resolved
        self.hint_weight = float(hint_weight)
        self.logit = logit
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.attention = bool(attention)
        self.at_weight = float(at_weight)
        self.dkd_kwargs = dict(dkd_kwargs or {})
        self.sigma_bpm = float(sigma_bpm)
        if logit != "dkd" and self.dkd_kwargs:
            raise ValueError("dkd_kwargs given but logit is not 'dkd'")

        self.logit_loss: Distiller | None = None
        if logit == "soft":
            self.logit_loss = SoftDistiller(temperature, alpha, sigma_bpm)
        elif logit == "dkd":
            self.logit_loss = DKDDistiller(
                **({"temperature": temperature, "sigma_bpm": sigma_bpm} | self.dkd_kwargs)
            )
        self.adaptors = nn.ModuleList(
            []
            if self.attention
            else [
                nn.Sequential(
                    nn.Conv2d(student_channels[s], teacher_channels[t], 1, bias=False),
                    nn.BatchNorm2d(teacher_channels[t]),
                )
                for s, t in self.pairs
            ]
        )

    def _check(self, feats: list[torch.Tensor] | None, channels: list[int], who: str) -> None:
        if feats is None:
            raise ValueError(f"feature distillation needs the {who}'s feature maps")
        if len(feats) != len(channels):
            raise ValueError(f"{len(feats)} {who} feature maps, expected {len(channels)}")
        for i, (f, c) in enumerate(zip(feats, channels, strict=True)):
            if f.shape[1] != c:
                raise ValueError(f"{who} feature {i} has {f.shape[1]} channels, expected {c}")

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
        self._check(student_features, self.student_channels, "student")
        self._check(teacher_features, self.teacher_channels, "teacher")
        assert student_features is not None and teacher_features is not None
        if self.logit_loss is None:
            ce = soft_target_loss(student_logits, bpm, self.sigma_bpm)
            out = {"loss": ce, "ce": ce}
        else:
            out = self.logit_loss(student_logits, teacher_logits, bpm, epoch=epoch)

        terms = []
        if self.attention:
            for s, t in self.pairs:
                terms.append(attention_loss(student_features[s], teacher_features[t]))
            at = torch.stack(terms).mean()
            out["at"] = at
            out["loss"] = out["loss"] + self.at_weight * at
        else:
            for adaptor, (s, t) in zip(self.adaptors, self.pairs, strict=True):
                target = as_map(teacher_features[t]).detach().float()
                adapted = resample_time(adaptor(as_map(student_features[s])), target.shape[-1])
                terms.append(F.mse_loss(adapted.float(), target))
            hint = torch.stack(terms).mean()
            out["hint"] = hint
            out["loss"] = out["loss"] + self.hint_weight * hint
        return out

    def hparams(self) -> dict[str, Any]:
        return {
            "student_channels": list(self.student_channels),
            "teacher_channels": list(self.teacher_channels),
            "pairs": [list(p) for p in self.pairs],
            "hint_weight": self.hint_weight,
            "logit": self.logit,
            "temperature": self.temperature,
            "alpha": self.alpha,
            "attention": self.attention,
            "at_weight": self.at_weight,
            "dkd_kwargs": dict(self.dkd_kwargs),
            "sigma_bpm": self.sigma_bpm,
        }
