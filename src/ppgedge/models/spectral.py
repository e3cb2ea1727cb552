"""A 1D-ResNet with a spectral head: evidence that shifts with the heart rate (issue #16).

A network that ends in a fully connected layer has one weight row per BPM class, learnt only
from the windows labelled with that class: on a few subjects the rows of rare heart rates are
poorly trained and the small students lose most (benchmarks/results/spectral_probe.md). The
spectral head reads the PPG's spectrum at every class frequency and compares it along the
class axis with the same small convolutions everywhere, so class ``k``'s evidence is the same
function of the spectrum around ``f_k`` for every ``k``. Its logits are added to the ResNet's.

Everything is int8-friendly and cheap enough for the nRF52840 budget:

* the PPG (channel 0) is averaged over every few samples down to at least 8 Hz (the class
  frequencies end at 3.5 Hz) by a fixed convolution;
* a fixed, Hann-tapered DFT at every BPM of the range and a few beyond it is one fully
  connected layer whose rows are ``+cos, -cos, +sin, -sin``, followed by a ReLU: the four
  rectified parts carry the magnitude through int8 without a square or a log;
* its outputs are ordered class-major, so the channel-last int8 graph needs a RESHAPE, not a
  TRANSPOSE, to lay them out along the class axis for the unpadded (1, k) convolutions that
  follow (the extra BPM beyond the range replace padding: no PAD op, real spectrum at the
  edges); the final sum is quantised like any ADD.

About 86 k MACs and 48 k fixed int8 weights at 32 Hz and 8 s windows. The pooling and DFT
layers are fixed (:class:`FixedPool`, :class:`FixedBasis`): never pruned, never trained.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ppgedge.data.format import MAX_RATE_HZ
from ppgedge.models.bpm import BPM_MIN, N_CLASSES
from ppgedge.models.layers import as_4d
from ppgedge.models.registry import register_model
from ppgedge.models.resnet import ResNet1D

MIN_POOLED_RATE_HZ = 8.0  # above twice the highest class frequency (209 BPM = 3.48 Hz)
PARTS = 4  # +cos, -cos, +sin, -sin


class FixedBasis(nn.Linear):
    """A fully connected layer holding a fixed transform: pruning and training leave it alone."""

    ppgedge_unprunable = True

    def __init__(self, basis: torch.Tensor) -> None:
        super().__init__(basis.shape[1], basis.shape[0], bias=False)
        with torch.no_grad():
            self.weight.copy_(basis)
        self.requires_grad_(False)


class FixedPool(nn.Conv2d):
    """The PPG channel's mean over every ``pool`` samples, as a fixed convolution.

    Not a slice and an AVERAGE_POOL_2D: the model input then has two consumers of different
    kinds, PT2E observes it twice, and the converter cannot give the ResNet stem's PAD one
    scale. Two convolutions share the input's observer."""

    ppgedge_unprunable = True

    def __init__(self, in_channels: int, pool: int) -> None:
        super().__init__(in_channels, 1, (1, pool), (1, pool), bias=False)
        with torch.no_grad():
            self.weight.zero_()
            self.weight[0, 0] = 1.0 / pool
        self.requires_grad_(False)


def pool_factor(sample_rate_hz: float) -> int:
    """The largest average-pooling factor that leaves at least 8 samples per second."""
    return max(1, int(sample_rate_hz // MIN_POOLED_RATE_HZ))


def dft_basis(window_samples: int, sample_rate_hz: float, pool: int, margin: int) -> torch.Tensor:
    """((N_CLASSES + 2 margin) * 4, window_samples // pool): for each BPM from BPM_MIN - margin
    to BPM_MAX + margin the rows +cos, -cos, +sin, -sin of a Hann-tapered DFT at BPM / 60 Hz,
    at the pooled samples' centre times, scaled so a unit sinusoid there gives about 1."""
    n = window_samples // pool
    t = (torch.arange(n, dtype=torch.float64) * pool + (pool - 1) / 2) / sample_rate_hz
    taper = torch.hann_window(n, periodic=False, dtype=torch.float64)
    k = N_CLASSES + 2 * margin
    f = (BPM_MIN - margin + torch.arange(k, dtype=torch.float64)) / 60.0
    phase = 2 * math.pi * f[:, None] * t[None, :]
    cos, sin = torch.cos(phase) * taper, torch.sin(phase) * taper
    rows = torch.stack([cos, -cos, sin, -sin], dim=1)  # (K, 4, n): class-major
    return (rows.reshape(k * PARTS, n) * (2.0 / taper.sum())).float()


class SpectralHead(nn.Module):
    """Logits from the PPG spectrum: DFT magnitude parts, then (1, k) convs over the classes."""

    def __init__(
        self,
        in_channels: int,
        window_samples: int,
        sample_rate_hz: float,
        width: int = 8,
        depth: int = 2,
        kernel: int = 5,
    ) -> None:
        super().__init__()
        if not MIN_POOLED_RATE_HZ <= sample_rate_hz <= MAX_RATE_HZ:  # also refuses NaN
            raise TypeError(
                f"sample_rate_hz {sample_rate_hz} is not from {MIN_POOLED_RATE_HZ:g} to "
                f"{MAX_RATE_HZ:g} Hz (209 BPM needs at least 7 samples a second)"
            )
        self.pool_by = pool_factor(sample_rate_hz)  # a remainder of samples is left out
        if window_samples // self.pool_by < 8:
            raise TypeError(
                f"a window of {window_samples} samples at {sample_rate_hz:g} Hz leaves the "
                "spectral head fewer than 8 samples"
            )
        self.pool = FixedPool(in_channels, self.pool_by)
        # each unpadded convolution eats kernel // 2 classes at either end: the DFT reads that
        # many BPM beyond the range instead (no PAD op, and real spectrum at the edges)
        self.margin = depth * (kernel // 2)
        self.bins = N_CLASSES + 2 * self.margin
        self.dft = FixedBasis(dft_basis(window_samples, sample_rate_hz, self.pool_by, self.margin))
        self.act = nn.ReLU()
        convs: list[nn.Module] = []
        cin = PARTS
        for _ in range(depth - 1):
            convs += [nn.Conv2d(cin, width, (1, kernel), bias=False), nn.BatchNorm2d(width)]
            convs.append(nn.ReLU())
            cin = width
        convs.append(nn.Conv2d(cin, 1, (1, kernel)))
        self.convs = nn.Sequential(*convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ppg = self.pool(as_4d(x)).flatten(1)  # (B, n)
        parts = self.act(self.dft(ppg))  # (B, bins * 4), class-major
        # static sizes only (the int8 graph must not depend on the batch size), and `view`,
        # not `reshape`: the quantizer lets a view and the permute after it share the ReLU's
        # int8 grid, as the single RESHAPE they convert to does; after a `reshape` QAT would
        # requantise onto a second grid that the device never uses (not bit-exact)
        grid = parts.view(-1, 1, self.bins, PARTS).permute(0, 3, 1, 2)  # (B, 4, 1, bins)
        return self.convs(grid).flatten(1)  # (B, K)


class SpectralResNet(ResNet1D):
    """ResNet1D logits plus the spectral head's; features (for distillation) are the ResNet's."""

    def __init__(
        self,
        window_samples: int = 256,
        sample_rate_hz: float = 32.0,
        head_width: int = 8,
        head_depth: int = 2,
        **resnet: int,
    ) -> None:
        super().__init__(**resnet)
        self.spectral = SpectralHead(
            resnet.get("in_channels", 4), window_samples, sample_rate_hz, head_width, head_depth
        )

    def forward_with_features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        feats = self.forward_features(x)
        return feats, self.head(self.pool(feats[-1])) + self.spectral(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + self.spectral(x)


@register_model(
    "resnet_small_spectral",
    family="resnet",
    description="resnet_small + spectral head over the PPG (48 k fixed DFT weights)",
    format_knobs=("window_samples", "sample_rate_hz"),
    first_channel="ppg",
)
def resnet_small_spectral(**kwargs) -> SpectralResNet:
    return SpectralResNet(**({"width": 8, "depth": 1, "stages": 4, "kernel": 5} | kwargs))
