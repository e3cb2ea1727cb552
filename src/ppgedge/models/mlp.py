"""MLP baseline over the whole (optionally average-pooled) window.

The seed paper contrasts ResNet and MLP students; the MLP has no translation-invariance prior,
which is exactly what that comparison measures.
"""

from __future__ import annotations

import torch
from torch import nn

from ppgedge.models.bpm import N_CLASSES
from ppgedge.models.layers import as_4d
from ppgedge.models.registry import register_model


def _flatten_time_major(x: torch.Tensor) -> torch.Tensor:
    """(B, C, 1, T) -> (B, T*C) in time-major order, the order of the channel-last (B, 1, T, C)
    tensor the int8 model runs on: the converter then emits a plain RESHAPE, no TRANSPOSE."""
    return x.permute(0, 2, 3, 1).flatten(1)


class MLP(nn.Module):
    def __init__(
        self,
        in_channels: int = 4,
        window_samples: int = 256,
        hidden: tuple[int, ...] | list[int] = (256, 128),
        pool: int = 2,
        num_classes: int = N_CLASSES,
    ) -> None:
        super().__init__()
        if window_samples % pool:
            raise TypeError(f"window_samples {window_samples} is not a multiple of pool {pool}")
        self.pool = nn.AvgPool2d((1, pool)) if pool > 1 else nn.Identity()
        layers: list[nn.Module] = []
        width = in_channels * (window_samples // pool)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.features_dim = width
        self.head = nn.Linear(width, num_classes)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Hidden activations (B, H) after each ReLU (for feature distillation)."""
        h = _flatten_time_major(self.pool(as_4d(x)))
        feats = []
        for layer in self.body:
            h = layer(h)
            if isinstance(layer, nn.ReLU):
                feats.append(h)
        return feats or [h]

    def forward_with_features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        feats = self.forward_features(x)
        return feats, self.head(feats[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(as_4d(x))
        return self.head(self.body(_flatten_time_major(x)))


@register_model(
    "mlp",
    family="mlp",
    description="MLP over the pooled window, ~0.19 M params",
    format_knobs=("window_samples",),
)
def mlp(**kwargs) -> MLP:
    return MLP(**kwargs)


@register_model(
    "mlp_micro",
    family="mlp",
    description="micro MLP student, ~5 k params",
    format_knobs=("window_samples",),
)
def mlp_micro(**kwargs) -> MLP:
    return MLP(**({"hidden": (16,), "pool": 8} | kwargs))


@register_model(
    "mlp_small",
    family="mlp",
    description="small MLP student, ~14 k params",
    format_knobs=("window_samples",),
)
def mlp_small(**kwargs) -> MLP:
    return MLP(**({"hidden": (32,), "pool": 4} | kwargs))
