"""Per-window normalisation applied at the model input.

One definition, written to be reproduced bit-for-bit in firmware (a later export stage emits the
same arithmetic in C): each channel of each window has its mean removed and is divided by its
standard deviation plus ``EPS``. This removes sensor gain, DC level and gravity, so models trained
on one device's units transfer to another's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ppgedge.errors import PpgedgeError

if TYPE_CHECKING:  # reading a dataset's format (``data info``) must not import torch (2.5 s)
    import torch

EPS = 1e-3
KNOWN = ("zscore_per_window",)


def check_known(name: str) -> None:
    if name not in KNOWN:
        raise PpgedgeError(f"unknown preprocessing '{name}': this version knows {list(KNOWN)}")


def zscore_numpy(x: np.ndarray) -> np.ndarray:
    """Reference implementation on (..., T) float arrays."""
    x = np.asarray(x, dtype=np.float32)
    mean = x.mean(axis=-1, keepdims=True)
    std = x.std(axis=-1, keepdims=True)
    return (x - mean) / (std + EPS)


def zscore_torch(x: torch.Tensor) -> torch.Tensor:
    """The same arithmetic as :func:`zscore_numpy`, on batches already on the device."""
    mean = x.mean(dim=-1, keepdim=True)
    std = x.std(dim=-1, keepdim=True, unbiased=False)
    return (x - mean) / (std + EPS)
