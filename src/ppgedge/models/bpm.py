"""The output space: 180 classes, one per BPM from 30 to 209.

Training targets are Gaussians around the true (fractional) BPM, which tells the network that
72 is a better mistake than 150; decoding is the argmax class, the argmax of the logits smoothed
over neighbouring classes, or the softmax expectation.
"""

from __future__ import annotations

import torch

from ppgedge.data.format import BPM_MAX, BPM_MIN

N_CLASSES = BPM_MAX - BPM_MIN + 1
DECODERS = ("argmax", "smoothed", "expectation")
# Triangular weights over classes k-2..k+2 for the "smoothed" decoder: integers, so firmware can
# apply them to the int8 logits exactly in int32 (edges replicate the end classes).
SMOOTHING_WEIGHTS = (1, 2, 3, 2, 1)


def class_bpm(device: torch.device | str | None = None) -> torch.Tensor:
    return torch.arange(BPM_MIN, BPM_MAX + 1, dtype=torch.float32, device=device)


def gaussian_targets(bpm: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """(B,) BPM -> (B, 180) probability vectors, a Gaussian of ``sigma`` BPM around each."""
    centres = class_bpm(bpm.device)
    logits = -0.5 * ((centres[None, :] - bpm[:, None]) / sigma) ** 2
    return torch.softmax(logits, dim=1)


def decode(logits: torch.Tensor, method: str = "argmax") -> torch.Tensor:
    """(B, 180) logits -> (B,) BPM."""
    if method == "argmax":
        return logits.argmax(dim=1).to(torch.float32) + BPM_MIN
    if method == "smoothed":
        return smoothed_logits(logits).argmax(dim=1).to(torch.float32) + BPM_MIN
    if method == "expectation":
        return (torch.softmax(logits.float(), dim=1) * class_bpm(logits.device)).sum(dim=1)
    raise ValueError(f"unknown decoder '{method}' (use {DECODERS})")


def smoothed_logits(logits: torch.Tensor) -> torch.Tensor:
    """Logits convolved with :data:`SMOOTHING_WEIGHTS` along the class axis.

    Adjacent BPM classes have nearly equal logits (the targets are Gaussians), so on int8
    outputs the plain argmax often breaks a tie or a one-step rounding difference; the
    smoothed peak is stable against both, and the ordinal structure makes it a better estimate.
    """
    w = torch.tensor(SMOOTHING_WEIGHTS, dtype=torch.float64, device=logits.device)
    half = len(SMOOTHING_WEIGHTS) // 2
    x = torch.nn.functional.pad(logits.double()[:, None, :], (half, half), mode="replicate")
    return torch.nn.functional.conv1d(x, w.view(1, 1, -1))[:, 0, :]
