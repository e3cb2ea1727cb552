"""The output space: 180 classes, one per BPM from 30 to 209.

Training targets are Gaussians around the true (fractional) BPM, which tells the network that
72 is a better mistake than 150; decoding is either the argmax class or the softmax expectation.
"""

from __future__ import annotations

import torch

from ppgedge.data.format import BPM_MAX, BPM_MIN

N_CLASSES = BPM_MAX - BPM_MIN + 1
DECODERS = ("argmax", "expectation")


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
    if method == "expectation":
        return (torch.softmax(logits.float(), dim=1) * class_bpm(logits.device)).sum(dim=1)
    raise ValueError(f"unknown decoder '{method}' (use {DECODERS})")
