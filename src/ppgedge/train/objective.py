"""Training objectives: what a batch's loss is.

The trainer owns the loop (data, optimiser, schedule, early stopping, resume); an objective owns
the loss. Supervised training and every distillation method plug into the same loop through this
one interface, so they are compared at equal epochs, schedule and data.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ppgedge.models.bpm import gaussian_targets


def soft_target_loss(logits: torch.Tensor, bpm: torch.Tensor, sigma: float) -> torch.Tensor:
    """Cross-entropy against a Gaussian of ``sigma`` BPM around the true heart rate."""
    return F.cross_entropy(logits, gaussian_targets(bpm, sigma))


class Objective(nn.Module):
    """Loss of one batch; may own trainable parameters (e.g. feature adaptors).

    ``rows`` are the batch's window indices in the dataset (for cached teacher outputs);
    ``augmented`` says whether ``x`` was altered, so cached outputs no longer apply.
    """

    method = "supervised"

    def losses(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        rows: torch.Tensor,
        epoch: int,
        augmented: bool,
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What decides the loss; recorded in the checkpoint and hashed for resume."""
        return {"method": self.method}

    def input_channels(self) -> tuple[str, ...] | None:
        """Channels the batches must carry when they differ from the student's own (e.g. a
        cross-modal teacher that sees more); ``None``: the student's channels."""
        return None

    def parent_record(self) -> dict[str, Any] | None:
        """The artifact this training learns from (a teacher), if any."""
        return None


class Supervised(Objective):
    """Ground truth only: soft Gaussian targets."""

    def __init__(self, sigma_bpm: float = 1.5) -> None:
        super().__init__()
        self.sigma_bpm = sigma_bpm

    def losses(self, model, x, y, rows, epoch, augmented):  # noqa: D102
        return {"loss": soft_target_loss(model(x), y, self.sigma_bpm)}

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "label_sigma_bpm": self.sigma_bpm}
