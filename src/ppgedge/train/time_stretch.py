"""Label-scaled time stretch: the augmentation that lends a small dataset heart rates it lacks.

Resampling a window by a factor ``f`` changes every rhythm in it by ``f`` (pulse and cadence
alike), so the label becomes ``HR * f``. Slowing down (``f < 1``) needs only the window itself:
a crop of ``T * f`` samples is stretched to ``T``. Speeding up (``f > 1``) needs ``T * f``
samples, more than one window holds; the next window of the same recording (one hop later)
supplies them, so the fastest factor is ``(window + hop) / window`` (1.25 for 8 s windows and a
2 s hop).

The one-sided version (``"slower"``) only ever lowers labels: it moves examples out of the
scarce high heart rates into the common middle ones, the opposite of what a small dataset
needs at the top of its range. ``"both"`` draws ``log f`` uniformly in ``[-log m, log m]``, so
the label distribution is widened on both sides; a window without a successor (the last of its
recording) is slowed down instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from ppgedge.data.format import BPM_MAX, BPM_MIN, Dataset
from ppgedge.data.loader import WindowSource

MODES = ("both", "slower", "off")


def successor_positions(dataset: Dataset, indices: np.ndarray) -> np.ndarray:
    """For each window of ``indices``: the position (into ``indices``) of the window one hop
    later in the same recording, or -1 where there is none (recording end, or a gap)."""
    indices = np.asarray(indices, dtype=np.int64)
    out = np.full(len(indices), -1, dtype=np.int64)
    if len(indices) == 0:
        return out
    rate = dataset.fmt.sample_rate_hz
    hop = dataset.fmt.hop_samples
    rec = np.asarray(dataset.recording[indices], dtype=np.int64)
    start = np.rint(np.asarray(dataset.start_s[indices], dtype=np.float64) * rate).astype(np.int64)
    order = np.lexsort((start, rec))  # by recording, then start: a successor comes next
    a, b = order[:-1], order[1:]
    follows = (rec[a] == rec[b]) & (start[b] == start[a] + hop)
    out[a[follows]] = b[follows]
    return out


@dataclass(frozen=True)
class Neighbours:
    """The successors of a training source's windows, and the batch being augmented."""

    source: WindowSource
    successors: np.ndarray  # per position of ``source``: its successor's position, or -1
    hop: int
    positions: np.ndarray | None = None

    @classmethod
    def of(cls, source: WindowSource) -> Neighbours:
        succ = successor_positions(source.dataset, source.indices)
        return cls(source, succ, source.dataset.fmt.hop_samples)

    def at(self, positions: np.ndarray) -> Neighbours:
        return replace(self, positions=np.asarray(positions))

    def for_batch(
        self,
    ) -> tuple[np.ndarray, Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]], int]:
        if self.positions is None:
            raise ValueError("bug: Neighbours.at(positions) first")

        def fetch(pos: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.from_numpy(self.source.windows(pos)), torch.from_numpy(self.source.y[pos])

        return self.successors[self.positions], fetch, self.hop


def time_stretch(
    x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator, max_stretch: float, p: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Slow a random share ``p`` of the windows down by a factor in [1, max_stretch]: a random
    crop of T/s samples is linearly resampled to T, so every rhythm slows by s and the label
    becomes HR/s (the one-sided ``"slower"`` mode)."""
    b, _, t = x.shape
    factor = np.where(rng.random(b) < p, rng.uniform(1.0, max_stretch, b), 1.0)
    span = (t - 1) / factor
    offset = rng.random(b) * (t - 1 - span)
    pos = offset[:, None] + np.arange(t)[None, :] / factor[:, None]
    return _interpolate(x, pos), y / torch.from_numpy(factor.astype(np.float32))


def _interpolate(x: torch.Tensor, pos: np.ndarray) -> torch.Tensor:
    """Each row of ``x`` read at the (fractional) sample positions ``pos`` (B, T_out)."""
    pos_t = torch.from_numpy(pos.astype(np.float32))
    lo = pos_t.floor().long().clamp(0, x.shape[2] - 2)
    w = (pos_t - lo).unsqueeze(1)
    idx = lo.unsqueeze(1).expand(-1, x.shape[1], -1)
    return x.gather(2, idx) * (1 - w) + x.gather(2, idx + 1) * w


def _resample(x: torch.Tensor, offset: np.ndarray, rate: np.ndarray, t_out: int) -> torch.Tensor:
    """``t_out`` samples of each row: output sample j reads input position offset + j * rate."""
    return _interpolate(x, offset[:, None] + np.arange(t_out)[None, :] * rate[:, None])


def _extend(x: torch.Tensor, nxt: torch.Tensor, hop: int) -> torch.Tensor:
    """Window ``x`` followed by the last ``hop`` samples of its successor ``nxt``, mapped onto
    ``x``'s scale: both are z-scored copies of the same signal where they overlap, so a
    per-channel least-squares affine map fitted on the overlap joins them without a seam."""
    t = x.shape[2]
    a_part, b_part = x[:, :, hop:], nxt[:, :, : t - hop]
    mb = b_part.mean(2, keepdim=True)
    ma = a_part.mean(2, keepdim=True)
    var = ((b_part - mb) ** 2).mean(2, keepdim=True)
    cov = ((a_part - ma) * (b_part - mb)).mean(2, keepdim=True)
    slope = torch.where(var > 1e-8, cov / var.clamp(min=1e-8), torch.ones_like(var))
    tail = (nxt[:, :, t - hop :] - mb) * slope + ma
    return torch.cat([x, tail], dim=2)


def two_sided_stretch(
    x: torch.Tensor,
    y: torch.Tensor,
    rng: np.random.Generator,
    max_stretch: float,
    p: float,
    successors: np.ndarray | None,
    fetch: Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]] | None,
    hop: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stretch a random share ``p`` of the windows by ``f``, ``log f`` uniform in
    ``[-log max_stretch, log max_stretch]``; ``f > 1`` (faster) uses the successor window that
    ``fetch(positions) -> (windows, labels)`` returns for ``successors`` (-1: none, then the
    window is slowed by ``1 / f`` instead; ``successors=None``: no window has one). Labels are
    scaled by ``f``; a sped-up window's label is the heart rate interpolated between the two
    windows at the crop's centre."""
    b, _, t = x.shape
    # the join needs at least half a window of overlap
    if successors is None or fetch is None or not 1 <= hop <= t // 2:
        successors = np.full(b, -1, dtype=np.int64)
    log_m = float(np.log(max(max_stretch, 1.0)))
    chosen = rng.random(b) < p
    factor = np.where(chosen, np.exp(rng.uniform(-log_m, log_m, b)), 1.0)
    has_next = successors >= 0
    factor = np.where((factor > 1.0) & ~has_next, 1.0 / factor, factor)
    factor = np.minimum(factor, (t - 1 + hop) / (t - 1))  # the crop must fit window + hop
    fast = np.flatnonzero(factor > 1.0)
    slow = np.flatnonzero(factor < 1.0)
    u = rng.random(b)
    x_out, y_out = x.clone(), y.clone()
    if len(slow):
        f = factor[slow]
        offset = u[slow] * (t - 1) * (1.0 - f)
        x_out[slow] = _resample(x[slow], offset, f, t)
        y_out[slow] = y[slow] * torch.from_numpy(f.astype(np.float32))
    if len(fast):
        f = factor[fast]
        nxt_x, nxt_y = fetch(successors[fast])  # type: ignore[misc]  (checked above)
        ext = _extend(x[fast], nxt_x, hop)
        span = (t - 1) * f
        offset = u[fast] * (t - 1 + hop - span)
        x_out[fast] = _resample(ext, offset, f, t)
        shift = np.clip((offset + span / 2 - (t - 1) / 2) / hop, 0.0, 1.0).astype(np.float32)
        w = torch.from_numpy(shift)
        hr = y[fast] * (1 - w) + nxt_y * w
        y_out[fast] = hr * torch.from_numpy(f.astype(np.float32))
    return x_out, y_out.clamp(min=BPM_MIN, max=BPM_MAX)


def sped_up(
    source: WindowSource, factor: float, positions: np.ndarray | None = None
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Every window of ``source`` that has a successor, sped up by a fixed ``factor`` (> 1,
    at most ``(window + hop) / window``) with a centred crop: (positions used, windows,
    labels). Deterministic, so a held-out set can be read at heart rates its subjects never
    reached (the labels are the interpolated heart rate times ``factor``, clamped to the
    output range)."""
    t, hop = source.dataset.x.shape[2], source.dataset.fmt.hop_samples
    if not 1.0 < factor <= (t - 1 + hop) / (t - 1) or not 1 <= hop <= t // 2:
        raise ValueError(f"factor {factor} outside (1, {(t - 1 + hop) / (t - 1):.3f}]")
    succ = successor_positions(source.dataset, source.indices)
    pos = np.arange(len(source)) if positions is None else np.asarray(positions)
    pos = pos[succ[pos] >= 0]
    x, y = torch.from_numpy(source.windows(pos)), torch.from_numpy(source.y[pos])
    nxt_x, nxt_y = (
        torch.from_numpy(source.windows(succ[pos])),
        torch.from_numpy(source.y[succ[pos]]),
    )
    span = (t - 1) * factor
    f = np.full(len(pos), factor)
    offset = np.full(len(pos), (t - 1 + hop - span) / 2)
    x_out = _resample(_extend(x, nxt_x, hop), offset, f, t)
    shift = float(np.clip((offset[0] + span / 2 - (t - 1) / 2) / hop, 0.0, 1.0)) if len(pos) else 0
    y_out = (y * (1 - shift) + nxt_y * shift) * factor
    return pos, x_out, y_out.clamp(min=BPM_MIN, max=BPM_MAX)
