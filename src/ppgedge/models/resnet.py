"""1D-ResNet family (the seed paper's backbone) with width and depth knobs.

Stage ``i`` has ``width * 2**i`` channels (capped by ``max_width``) and ``depth`` basic blocks;
every stage after the first halves the time axis. Presets span a ~1.5 M-parameter teacher down to
a ~2 k-parameter student.
"""

from __future__ import annotations

import torch
from torch import nn

from ppgedge.models.bpm import N_CLASSES
from ppgedge.models.layers import ConvBNAct, GlobalAvgPool, as_4d
from ppgedge.models.registry import register_model


class BasicBlock(nn.Module):
    """Two (1, k) convolutions with an identity or 1x1 projection shortcut."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(cin, cout, kernel, stride)
        self.conv2 = ConvBNAct(cout, cout, kernel, act=False)
        self.shortcut: nn.Module = (
            ConvBNAct(cin, cout, 1, stride, act=False)
            if stride != 1 or cin != cout
            else nn.Identity()
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


class ResNet1D(nn.Module):
    def __init__(
        self,
        in_channels: int = 4,
        width: int = 16,
        depth: int = 1,
        stages: int = 4,
        kernel: int = 7,
        stem_kernel: int = 9,
        max_width: int = 512,
        num_classes: int = N_CLASSES,
    ) -> None:
        super().__init__()
        if min(in_channels, width, depth, stages, kernel) < 1:
            raise TypeError("in_channels, width, depth, stages and kernel must be >= 1")
        self.stem = ConvBNAct(in_channels, width, stem_kernel, stride=2)
        blocks: list[nn.Module] = []
        cin = width
        for i in range(stages):
            cout = min(width * 2**i, max_width)
            for j in range(depth):
                blocks.append(BasicBlock(cin, cout, kernel, 2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.stages = nn.Sequential(*blocks)
        self.pool = GlobalAvgPool()
        self.features_dim = cin
        self.head = nn.Linear(cin, num_classes)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps after the stem and after each block (for feature distillation)."""
        feats = [self.stem(as_4d(x))]
        for block in self.stages:
            feats.append(block(feats[-1]))
        return feats

    def forward_with_features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        feats = self.forward_features(x)
        return feats, self.head(self.pool(feats[-1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.stages(self.stem(as_4d(x)))))


@register_model("resnet1d", family="resnet", description="1D-ResNet, all knobs free")
def resnet1d(**kwargs) -> ResNet1D:
    return ResNet1D(**kwargs)


_PRESETS = {
    # name: (width, depth, stages, kernel, description)
    "resnet_teacher": (24, 2, 4, 7, "teacher, ~1.3 M params"),
    "resnet_medium": (16, 2, 4, 7, "medium student / teaching assistant, ~0.6 M params"),
    "resnet_base": (16, 1, 4, 7, "main-job teacher on CPU, ~0.27 M params"),
    "resnet_small": (8, 1, 4, 5, "small student, ~56 k params (1/22 of the teacher)"),
    "resnet_tiny": (8, 1, 3, 5, "tiny student, ~17 k params"),
    "resnet_mini": (4, 1, 3, 5, "mini student, ~6 k params"),
    "resnet_micro": (4, 1, 2, 5, "micro student, ~2.4 k params"),
}


def _make_preset(name: str, width: int, depth: int, stages: int, kernel: int, desc: str) -> None:
    def build(**kwargs) -> ResNet1D:
        args = {"width": width, "depth": depth, "stages": stages, "kernel": kernel} | kwargs
        return ResNet1D(**args)

    register_model(name, family="resnet", description=desc)(build)


for _name, (_w, _d, _s, _k, _desc) in _PRESETS.items():
    _make_preset(_name, _w, _d, _s, _k, _desc)
