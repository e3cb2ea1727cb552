"""Model registry: every architecture is registered by name and built by :func:`create_model`.

As in timm, a name maps to a constructor with keyword knobs; presets (``resnet_teacher``,
``resnet_tiny``...) are just registered constructors with other defaults, so a checkpoint only
needs ``(name, kwargs)`` to rebuild its network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ppgedge.errors import PpgedgeError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    family: str
    description: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, *, family: str, description: str) -> Callable:
    """Decorator: register ``builder(**kwargs) -> nn.Module`` under ``name``."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model '{name}' registered twice")
        _REGISTRY[name] = ModelEntry(name, builder, family, description)
        return builder

    return wrap


def list_models(*, include_composite: bool = False) -> list[ModelEntry]:
    """The zoo: every buildable-from-defaults architecture (composites such as ensembles, which
    need their members' arguments, only when asked)."""
    return [
        _REGISTRY[k]
        for k in sorted(_REGISTRY)
        if include_composite or _REGISTRY[k].family != "ensemble"
    ]


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model; unknown names and bad knobs are user errors."""
    entry = _REGISTRY.get(name)
    if entry is None:
        raise PpgedgeError(
            f"unknown model '{name}': run 'ppgedge models' to list them "
            f"({', '.join(sorted(_REGISTRY))})"
        )
    try:
        model = entry.builder(**kwargs)
    except TypeError as exc:
        raise PpgedgeError(f"model '{name}': bad arguments {kwargs} ({exc})") from None
    model.ppgedge_arch = (name, dict(kwargs))  # type: ignore[attr-defined]
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, in_channels: int, window_samples: int) -> int:
    """Multiply-accumulates of one window, from PyTorch's own FLOP counter (FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(1, in_channels, window_samples))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
