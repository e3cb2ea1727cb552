"""Depthwise-separable CNN (MobileNet-style), the usual microcontroller-friendly student."""

from __future__ import annotations

import torch
from torch import nn

from ppgedge.models.bpm import N_CLASSES
from ppgedge.models.layers import ConvBNAct, GlobalAvgPool, as_4d
from ppgedge.models.registry import register_model


class DSBlock(nn.Module):
    """Depthwise (1, k) convolution then pointwise 1x1, each with batch norm and ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.depthwise = ConvBNAct(cin, cin, kernel, stride, groups=cin)
        self.pointwise = ConvBNAct(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class DSCNN(nn.Module):
    def __init__(
        self,
        in_channels: int = 4,
        width: int = 32,
        blocks: int = 5,
        kernel: int = 9,
        max_width: int = 128,
        num_classes: int = N_CLASSES,
    ) -> None:
        super().__init__()
        self.stem = ConvBNAct(in_channels, width, kernel, stride=2)
        layers: list[nn.Module] = []
        cin = width
        for i in range(blocks):
            stride = 2 if i % 2 == 0 else 1
            cout = min(width * 2 ** ((i + 1) // 2), max_width)
            layers.append(DSBlock(cin, cout, kernel, stride))
            cin = cout
        self.blocks = nn.Sequential(*layers)
        self.pool = GlobalAvgPool()
        self.features_dim = cin
        self.head = nn.Linear(cin, num_classes)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps after the stem and after each block (for feature distillation)."""
        feats = [self.stem(as_4d(x))]
        for block in self.blocks:
            feats.append(block(feats[-1]))
        return feats

    def forward_with_features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        feats = self.forward_features(x)
        return feats, self.head(self.pool(feats[-1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.blocks(self.stem(as_4d(x)))))


@register_model("dscnn", family="dscnn", description="depthwise-separable CNN, ~60 k params")
def dscnn(**kwargs) -> DSCNN:
    return DSCNN(**kwargs)


@register_model(
    "dscnn_small", family="dscnn", description="small depthwise-separable CNN, ~8 k params"
)
def dscnn_small(**kwargs) -> DSCNN:
    return DSCNN(**({"width": 8, "blocks": 4, "max_width": 32} | kwargs))
