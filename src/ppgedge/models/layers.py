"""Building blocks written for a clean int8 export.

Time series are carried as (B, C, 1, T) and every convolution is a ``Conv2d`` with a (1, k)
kernel: the TFLite converter maps these to CONV_2D / DEPTHWISE_CONV_2D without the TRANSPOSE
pairs it wraps around ``Conv1d`` (findings.md: 9 transposes became 2 in a small ResNet). Batch
norm sits directly after each convolution so it folds into the int8 weights.
"""

from __future__ import annotations

import torch
from torch import nn


def as_4d(x: torch.Tensor) -> torch.Tensor:
    """Accept (B, C, T) windows as well as the export layout (B, C, 1, T)."""
    return x.unsqueeze(2) if x.dim() == 3 else x


class ConvBNAct(nn.Sequential):
    """Conv2d with a (1, k) kernel, batch norm, optional ReLU; 'same' padding in time."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(
                cin, cout, (1, kernel), (1, stride), (0, kernel // 2), groups=groups, bias=False
            ),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.ReLU(inplace=False))
        super().__init__(*layers)


class GlobalAvgPool(nn.Module):
    """Mean over the (1, T) plane; becomes a single MEAN op in TFLite.

    ``keepdim=True`` then flatten: a mean that drops the dimensions makes the channel-last
    converter put a TRANSPOSE in front of MEAN; this form converts to MEAN alone.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True).flatten(1)
