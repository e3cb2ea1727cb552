"""Accelerometer-driven augmentation: teach a model that motion in the PPG is what the
accelerometer says it is, not the heart rate.

For a random share ``p`` of the windows of a batch (preprocessed, z-scored per channel):

* **artifact injection**: the accelerometer of another window of the batch (its motion) is
  added to this window's accelerometer channels, and the same motion, through a random
  coupling (per-axis gains plus a squared term, as the wrist's optics couple it), is added to
  the PPG at a random strength of 0.2-1.5 times the PPG's own spread;
* **amplitude modulation**: the PPG is multiplied by a slow envelope (contact pressure and
  perfusion change within a window), depth up to 50 %;
* **time warp**: every channel is resampled along a smooth warp whose ends are fixed, so the
  local rate wobbles by up to 8 % while the number of beats in the window (and so the label,
  60 / mean interval) stays the same.

The channels are z-scored again afterwards, as the model's input always is. Every draw comes
from the trainer's ``(seed, epoch)`` generator, so a seed gives the same augmented batches; with
``p == 0`` nothing is drawn at all and training is as without this module.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ppgedge.data.preprocess import zscore_torch

MAX_WARP = 0.08  # largest local rate change of the time warp
MAX_AM_DEPTH = 0.5


def _warp(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Resample each window along t + A sin(pi m t / (T-1)) (m = 1..3, ends fixed)."""
    b, _, t = x.shape
    m = rng.integers(1, 4, size=b)
    slope = rng.uniform(-MAX_WARP, MAX_WARP, size=b)
    grid = np.arange(t, dtype=np.float64)
    amp = slope * (t - 1) / (np.pi * m)
    pos = grid[None, :] + amp[:, None] * np.sin(np.pi * m[:, None] * grid[None, :] / (t - 1))
    pos_t = torch.from_numpy(np.clip(pos, 0, t - 1).astype(np.float32))
    lo = pos_t.floor().long().clamp(0, t - 2)
    w = (pos_t - lo).unsqueeze(1)
    idx = lo.unsqueeze(1).expand(-1, x.shape[1], -1)
    return x.gather(2, idx) * (1 - w) + x.gather(2, idx + 1) * w


def motion_augment(
    x: torch.Tensor, rng: np.random.Generator, channels: Sequence[str], p: float
) -> torch.Tensor:
    """``x`` (B, C, T) with a share ``p`` of its windows augmented (see the module doc).

    Needs the PPG and at least one accelerometer channel; otherwise ``x`` is returned as is."""
    acc = [i for i, c in enumerate(channels) if c.startswith("acc")]
    ppg = [i for i, c in enumerate(channels) if c == "ppg"]
    if p <= 0 or not acc or not ppg or x.shape[0] < 2:
        return x
    b, _, t = x.shape
    chosen = np.flatnonzero(rng.random(b) < p)
    if chosen.size == 0:
        return x
    k = chosen.size
    donor = (chosen + rng.integers(1, b, size=k)) % b  # always another window
    rows = torch.from_numpy(chosen)
    sub = x[rows].clone()
    motion = x[torch.from_numpy(donor)][:, acc]  # (k, A, T)
    gains = torch.from_numpy(rng.standard_normal((k, len(acc))).astype(np.float32))
    direction = torch.from_numpy(rng.standard_normal((k, len(acc))).astype(np.float32))
    lin = torch.einsum("ka,kat->kt", gains, motion)
    proj = torch.einsum("ka,kat->kt", direction, motion) / np.sqrt(len(acc))
    sq = proj * proj
    art = zscore_torch(lin + 0.3 * (sq - sq.mean(dim=-1, keepdim=True)))
    strength = torch.from_numpy(rng.uniform(0.2, 1.5, size=(k, 1)).astype(np.float32))
    sub[:, acc] = sub[:, acc] + motion * torch.from_numpy(
        rng.uniform(0.5, 1.5, size=(k, 1, 1)).astype(np.float32)
    )
    pulse = sub[:, ppg[0]] + strength * art
    depth = rng.uniform(0.0, MAX_AM_DEPTH, size=(k, 1))
    cycles = rng.uniform(0.2, 2.0, size=(k, 1))
    phase = rng.uniform(0.0, 2 * np.pi, size=(k, 1))
    env = 1.0 + depth * np.sin(2 * np.pi * cycles * np.arange(t)[None, :] / t + phase)
    sub[:, ppg[0]] = pulse * torch.from_numpy(env.astype(np.float32))
    sub = zscore_torch(_warp(sub, rng))
    out = x.clone()
    out[rows] = sub
    return out
