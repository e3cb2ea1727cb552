"""Distillation as a training objective: a teacher, a distiller, and where the teacher's outputs
come from (the on-disk cache, or the teacher run online).

The teacher's outputs are read from the cache when the student sees exactly the cached windows
(no augmentation, no feature maps needed); otherwise the teacher runs on the same, possibly
augmented, batch. For cross-modal students the trainer draws the union of the teacher's and the
student's channels; the student sees only its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ppgedge.distill.methods.base import Distiller
from ppgedge.distill.teachers import Teacher
from ppgedge.train.objective import Objective


def student_features(model: nn.Module, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Feature maps and logits of a zoo student in one pass."""
    if hasattr(model, "forward_with_features"):
        return model.forward_with_features(x)
    raise TypeError(f"{type(model).__name__} does not expose feature maps")


class DistillObjective(Objective):
    def __init__(
        self,
        teacher: Teacher,
        distiller: Distiller,
        student_channels: tuple[str, ...],
        *,
        cached_logits: np.ndarray | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__()
        self.teacher = teacher
        self.distiller = distiller
        self.method = f"distill:{label or distiller.name}"
        self.student_channels = tuple(student_channels)
        teacher_channels = tuple(teacher.data_format.channels)
        self.channels = tuple(dict.fromkeys(teacher_channels + self.student_channels))
        self._student_idx = [self.channels.index(c) for c in self.student_channels]
        self._teacher_idx = [self.channels.index(c) for c in teacher_channels]
        self.cached = cached_logits  # (N, 180), possibly memory-mapped: read per batch

    def input_channels(self) -> tuple[str, ...]:
        return self.channels

    def losses(self, model, x, y, rows, epoch, augmented):  # noqa: D102
        xs = x[:, self._student_idx]
        xt = x[:, self._teacher_idx]
        s_feats = t_feats = None
        if self.distiller.needs_features:
            s_feats, s_logits = student_features(model, xs)
            with torch.no_grad():
                t_feats, t_logits = self.teacher.features(xt)
        else:
            s_logits = model(xs)
            if self.cached is not None and not augmented:
                t_logits = torch.from_numpy(np.asarray(self.cached[rows.numpy()]))
                t_logits = t_logits.to(s_logits.device)
            else:
                with torch.no_grad():
                    t_logits = self.teacher.logits(xt)
        return self.distiller(
            s_logits,
            t_logits.float(),
            y,
            epoch=epoch,
            student_features=s_feats,
            teacher_features=t_feats,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "distiller": self.distiller.name,
            "hparams": self.distiller.hparams(),
            "teacher_sha256": self.teacher.sha256,
            "teacher_channels": list(self.teacher.data_format.channels),
            "student_channels": list(self.student_channels),
        }

    def parent_record(self) -> dict[str, Any] | None:
        return self.teacher.record()

    def state_dict(self, *args, **kwargs):  # noqa: D102  the teacher is not trained state
        return self.distiller.state_dict(*args, **kwargs)

    def load_state_dict(self, state, strict: bool = True):  # noqa: D102
        return self.distiller.load_state_dict(state, strict)

    def parameters(self, recurse: bool = True):  # noqa: D102  only the distiller's adaptors train
        return self.distiller.parameters(recurse)
