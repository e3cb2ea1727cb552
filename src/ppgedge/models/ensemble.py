"""Ensemble teachers: several trained networks averaged into one model.

A teacher never runs on the wearable, so it may be an ensemble: averaging the class
probabilities of differently initialised networks gives smoother, better calibrated soft labels
and a lower error than any member (the seed article recommends ensemble teachers for exactly
that). The ensemble is an ordinary registered model, so it is saved, loaded, evaluated and used
as a teacher like any other checkpoint.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ppgedge.errors import PpgedgeError
from ppgedge.models.checkpoint import Checkpoint, load_checkpoint, model_record
from ppgedge.models.registry import create_model, register_model
from ppgedge.models.reshape import apply_layer_shapes


class Ensemble(nn.Module):
    """Outputs log of the mean member probability: softmax of it is the averaged distribution."""

    def __init__(self, members: list[dict[str, Any]]) -> None:
        super().__init__()
        if not members:
            raise TypeError("an ensemble needs at least one member")
        self.members = nn.ModuleList(
            create_model(m["arch"], **m.get("kwargs", {})) for m in members
        )

    def _average(self, logits: list[torch.Tensor]) -> torch.Tensor:
        logp = torch.stack([torch.log_softmax(z, dim=1) for z in logits])
        return torch.logsumexp(logp, dim=0) - math.log(len(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._average([m(x) for m in self.members])

    def forward_with_features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The ensemble's representation is the union of its members': stage ``i`` is every
        member's stage-``i`` map concatenated along channels (members share one architecture
        family, so their maps align in time). Used as a teacher for feature distillation."""
        outs = [m.forward_with_features(x) for m in self.members]
        n = {len(f) for f, _ in outs}
        if len(n) != 1:
            raise TypeError("ensemble members have different numbers of feature maps")
        feats = [torch.cat(maps, dim=1) for maps in zip(*(f for f, _ in outs), strict=True)]
        return feats, self._average([z for _, z in outs])

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_with_features(x)[0]


@register_model(
    "ensemble",
    family="ensemble",
    description="average of trained teachers (teacher only, not for devices)",
)
def ensemble(**kwargs) -> Ensemble:
    return Ensemble(**kwargs)


def ensemble_checkpoint(paths: list[str | Path]) -> Checkpoint:
    """One checkpoint averaging ``paths``; they must share data format and split."""
    if len(paths) < 2:
        raise PpgedgeError("an ensemble needs at least two checkpoints")
    members = [load_checkpoint(p) for p in paths]
    first = members[0]
    for p, m in zip(paths, members, strict=True):
        if m.data_format != first.data_format:
            raise PpgedgeError(f"{p}: data format differs from {paths[0]}'s: cannot ensemble")
        if m.training.get("split") != first.training.get("split"):
            raise PpgedgeError(
                f"{p}: trained on another split than {paths[0]}: an ensemble "
                "evaluated on held-out subjects needs one split"
            )
        if m.arch == "ensemble":
            raise PpgedgeError(f"{p}: is already an ensemble; list its members instead")
    spec = [{"arch": m.arch, "kwargs": m.arch_kwargs} for m in members]
    model = create_model("ensemble", members=spec)
    state: dict[str, torch.Tensor] = {}
    shapes: dict[str, dict[str, Any]] = {}
    for i, m in enumerate(members):
        state.update({f"members.{i}.{k}": v for k, v in m.state_dict.items()})
        shapes.update({f"members.{i}.{k}": v for k, v in m.layer_shapes.items()})
    apply_layer_shapes(model, shapes)
    model.load_state_dict(state)
    records = [model_record(p, m) for p, m in zip(paths, members, strict=True)]
    return Checkpoint(
        arch="ensemble",
        arch_kwargs={"members": spec},
        state_dict=state,
        data_format=first.data_format,
        decode=first.decode,
        layer_shapes=shapes,
        metrics={
            "members": len(members),
            "parameters": sum(r["metrics"].get("parameters", 0) for r in records),
        },
        training={
            k: first.training[k]
            for k in ("dataset", "dataset_sha256", "split")
            if k in first.training
        }
        | {"method": "ensemble"},
        parent={"members": records},
        lineage=[{"stage": "ensemble", "members": [r["path"] for r in records]}],
    )
