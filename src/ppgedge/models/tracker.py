"""Temporal tracking over the 180 BPM classes: a causal max-product (Viterbi) forward filter.

Each window is decoded alone by the per-window decoders, so one motion-corrupted window can
jump 40 BPM although a heart cannot. The tracker keeps one score per BPM class and, per window,

    alpha_t(j) = l_t(j) + max_{|d| <= K} (alpha_{t-1}(j - d) - cost(d)),  then alpha_t -= max

where ``l_t`` are the window's logits and ``cost(d)`` is ``weight * -log p(d)`` for the
distribution ``p`` of the BPM change per hop, fitted on the training labels (band-limited to
``|d| <= K``, Laplace-smoothed, shifted so ``cost(0 or the mode) = 0``). With a re-acquire cost
``J`` the max over predecessors is floored at ``-J``: since ``alpha_{t-1}`` peaks at 0, that is
a jump from the best class anywhere at cost ``J``, so a track that settled on a wrong heart
rate (the cadence, a harmonic) is left as soon as the evidence elsewhere outweighs it by more
than ``J``; without it the filter can only crawl ``K`` classes per hop. The estimate is the
argmax of ``alpha_t``; the confidence is the margin between it and the best class more than
:data:`PEAK_HALF_WIDTH` classes away (in logit units: a small margin flags a window where two
heart-rate hypotheses are nearly equally good).

The same function runs on int8 logits with integer costs (``cost`` quantised to the logits'
scale, ``int64`` arithmetic, scores clamped at :data:`FLOOR`): that is the definition the
firmware's C tracker reproduces bit for bit. On float logits it runs in float64 with the float
costs, the same algorithm without quantisation (only the int8 path is bit-exact with C).
Softmax is shift-invariant, so the int8 zero point does not matter, only the scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ppgedge.data.format import BPM_MIN
from ppgedge.errors import PpgedgeError

N_CLASSES = 180
FLOOR = -(1 << 20)  # scores below max - 2^20 logit quanta are clamped (bounded int32 state)
MAX_COST = 1 << 15  # integer costs are capped so int32 sums never overflow
PEAK_HALF_WIDTH = 5  # the confidence compares the peak with the best class > 5 BPM away
MAX_HALF_WIDTH = 30
_SENTINEL = -(1 << 40)


@dataclass(frozen=True)
class TransitionPrior:
    """The BPM-change-per-hop histogram (classes ``-half_width..half_width``) and its weight."""

    counts: tuple[int, ...]  # raw counts of each change on the training subjects
    half_width: int = 8  # K: the largest change per hop the tracker allows
    weight: float = 1.0  # scale of -log p(d) relative to the logits (chosen on validation)
    hop_s: float = 2.0
    n_pairs: int = 0  # consecutive training window pairs counted
    jump: float | None = None  # re-acquire cost J in logit units (None: no jump move)

    def __post_init__(self) -> None:
        k = len(self.counts) // 2
        if len(self.counts) != 2 * k + 1 or not 0 <= self.half_width <= k:
            raise PpgedgeError(
                f"tracker prior: {len(self.counts)} counts for half width {self.half_width}: "
                "refit it with ppgedge"
            )
        if not (math.isfinite(self.weight) and self.weight >= 0) or min(self.counts) < 0:
            raise PpgedgeError("tracker prior: negative or non-finite weight or counts: refit it")
        if self.jump is not None and not (math.isfinite(self.jump) and self.jump >= 0):
            raise PpgedgeError("tracker prior: the re-acquire cost must be >= 0: refit it")

    def with_params(
        self, half_width: int, weight: float, jump: float | None = None
    ) -> TransitionPrior:
        return TransitionPrior(self.counts, half_width, weight, self.hop_s, self.n_pairs, jump)

    def costs(self) -> np.ndarray:
        """float64 (2K+1,) cost of each change ``-K..K``: ``weight * (log p_max - log p(d))``."""
        k_all = len(self.counts) // 2
        c = np.asarray(self.counts, np.float64)[
            k_all - self.half_width : k_all + self.half_width + 1
        ]
        logp = np.log(c + 1.0)  # Laplace smoothing: every allowed change keeps some mass
        return self.weight * (logp.max() - logp)

    def int_costs(self, scale: float) -> np.ndarray:
        """int64 costs in units of the int8 logits' quantisation ``scale``."""
        if not (math.isfinite(scale) and scale > 0):
            raise PpgedgeError(f"tracker: logit scale {scale!r} must be positive and finite")
        return np.minimum(np.rint(self.costs() / scale), MAX_COST).astype(np.int64)

    def int_jump(self, scale: float) -> int | None:
        """The re-acquire cost in logit quanta of ``scale`` (None: no jump move)."""
        if self.jump is None:
            return None
        if not (math.isfinite(scale) and scale > 0):
            raise PpgedgeError(f"tracker: logit scale {scale!r} must be positive and finite")
        return int(min(round(self.jump / scale), MAX_COST))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "counts": list(self.counts),
            "half_width": self.half_width,
            "weight": self.weight,
            "hop_s": self.hop_s,
            "n_pairs": self.n_pairs,
        }
        if self.jump is not None:  # absent without: records made before it read the same
            d["jump"] = self.jump
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TransitionPrior:
        try:
            return cls(
                tuple(int(c) for c in d["counts"]),
                int(d["half_width"]),
                float(d["weight"]),
                float(d.get("hop_s", 2.0)),
                int(d.get("n_pairs", 0)),
                None if d.get("jump") is None else float(d["jump"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PpgedgeError(
                f"tracker prior is missing or has a bad field ({exc}): refit it"
            ) from None


def consecutive(recording: np.ndarray, start_s: np.ndarray, hop_s: float) -> np.ndarray:
    """bool (N,): window i directly follows window i-1 (same recording, one hop later).

    The arrays must already be in (recording, start_s) order; element 0 is always False."""
    rec = np.asarray(recording)
    start = np.asarray(start_s, np.float64)
    out = np.zeros(len(rec), bool)
    if len(rec) > 1:
        out[1:] = (rec[1:] == rec[:-1]) & (np.abs(np.diff(start) - hop_s) < 1e-3 * hop_s + 1e-4)
    return out


def sequence_order(recording: np.ndarray, start_s: np.ndarray) -> np.ndarray:
    """Indices that sort windows by recording, then start time (stable)."""
    return np.lexsort((np.asarray(start_s, np.float64), np.asarray(recording)))


def fit_prior(
    bpm: np.ndarray,
    recording: np.ndarray,
    start_s: np.ndarray,
    hop_s: float,
    *,
    max_half_width: int = MAX_HALF_WIDTH,
) -> TransitionPrior:
    """Histogram of the class change between consecutive windows (training labels only)."""
    order = sequence_order(recording, start_s)
    ok = consecutive(np.asarray(recording)[order], np.asarray(start_s)[order], hop_s)
    cls = bpm_class(np.asarray(bpm, np.float64)[order])
    d = (cls[1:] - cls[:-1])[ok[1:]]
    d = d[np.abs(d) <= max_half_width]
    counts = np.bincount(d + max_half_width, minlength=2 * max_half_width + 1)
    if int(ok.sum()) == 0:
        raise PpgedgeError(
            "tracker: no consecutive training windows (same recording, one hop apart) to fit "
            "the BPM-change prior: import the data with its recordings and start times"
        )
    return TransitionPrior(tuple(int(c) for c in counts), hop_s=hop_s, n_pairs=int(ok.sum()))


def bpm_class(bpm: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(bpm).astype(np.int64) - BPM_MIN, 0, N_CLASSES - 1)


@dataclass
class Tracked:
    """Per-window tracked BPM and confidence (in the input order), and the sequence facts."""

    bpm: np.ndarray  # float64 (N,)
    confidence: np.ndarray  # float64 (N,), logit units (int8 path: quanta x scale)
    sequences: int  # resets at recording boundaries (incl. the first window)
    gaps: int  # resets inside a recording because windows were not one hop apart


def check_logits(logits: np.ndarray) -> np.ndarray:
    a = np.asarray(logits)
    if a.ndim != 2 or a.shape[1] != N_CLASSES:
        raise PpgedgeError(
            f"tracker: logits of shape {tuple(a.shape)}, the tracker needs (windows, "
            f"{N_CLASSES}): feed it the output of a ppgedge BPM model"
        )
    return a


def filter_sequence(
    logits: np.ndarray,
    costs: np.ndarray,
    starts: np.ndarray | None = None,
    jump: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Run the filter over consecutive windows; ``starts[i]`` True resets before window i.

    Integer ``logits`` (int8 values) need integer ``costs`` (and ``jump``) and give the
    bit-exact firmware result; float logits run the same recursion in float64. ``jump``: the
    re-acquire cost (None: none). Returns (class index, margin)."""
    logits = check_logits(logits)
    integer = np.issubdtype(logits.dtype, np.integer)
    if integer != np.issubdtype(np.asarray(costs).dtype, np.integer):
        raise PpgedgeError("tracker: int8 logits need integer costs, float logits float costs")
    dt = np.int64 if integer else np.float64
    x = logits.astype(dt)
    cost = np.asarray(costs, dt)
    k = len(cost) // 2
    n = len(x)
    starts = np.zeros(n, bool) if starts is None else np.asarray(starts, bool)
    idx = np.empty(n, np.int64)
    margin = np.empty(n, dt)
    alpha = np.zeros(N_CLASSES, dt)
    pad = np.full(N_CLASSES + 2 * k, _SENTINEL if integer else -np.inf, dt)
    classes = np.arange(N_CLASSES)
    windows = np.lib.stride_tricks.sliding_window_view(pad, 2 * k + 1)  # a view: (180, 2K+1)
    rcost = cost[::-1]
    for t in range(n):
        if t == 0 or starts[t]:
            a = x[t].copy()
        else:
            pad[k : k + N_CLASSES] = alpha
            # prior(j) = max_d alpha(j - d) - cost(d), d = -K..K: pad[j + i] with d = K - i
            move = (windows - rcost).max(axis=1)
            if jump is not None:  # alpha peaks at 0: a jump from the best class costs J
                move = np.maximum(move, -jump)
            a = x[t] + move
        a = a - a.max()
        if integer:
            a = np.maximum(a, FLOOR)
        alpha = a
        j = int(np.argmax(a))  # first maximum, as the C loop's strict '>'
        far = np.abs(classes - j) > PEAK_HALF_WIDTH
        margin[t] = -a[far].max()
        idx[t] = j
    return idx, margin


def track(
    logits: np.ndarray,
    recording: np.ndarray,
    start_s: np.ndarray,
    hop_s: float,
    prior: TransitionPrior,
    *,
    scale: float | None = None,
) -> Tracked:
    """Track windows given in any order: sorted by (recording, start_s), reset at every new
    recording and at every gap, results returned in the input order.

    ``scale`` set: ``logits`` are int8 values of that quantisation scale (bit-exact path);
    otherwise float logits."""
    logits = check_logits(logits)
    n = len(logits)
    if not (len(recording) == len(start_s) == n):
        raise PpgedgeError(
            f"tracker: {n} windows of logits but {len(recording)} recordings and "
            f"{len(start_s)} start times: pass one of each per window"
        )
    order = sequence_order(recording, start_s)
    rec = np.asarray(recording)[order]
    ok = consecutive(rec, np.asarray(start_s)[order], hop_s)
    new_rec = np.ones(n, bool)
    new_rec[1:] = rec[1:] != rec[:-1]
    if scale is None:
        costs, jump = prior.costs(), prior.jump
        x = np.asarray(logits, np.float64)[order]
        unit = 1.0
    else:
        costs, jump = prior.int_costs(scale), prior.int_jump(scale)
        x = np.asarray(logits)[order]
        if x.size and (x.min() < -128 or x.max() > 127 or not np.issubdtype(x.dtype, np.integer)):
            raise PpgedgeError("tracker: quantised logits must be int8 values (-128..127)")
        unit = float(scale)
    idx, margin = filter_sequence(x, costs, ~ok, jump)
    bpm = np.empty(n, np.float64)
    conf = np.empty(n, np.float64)
    bpm[order] = idx + BPM_MIN
    conf[order] = margin.astype(np.float64) * unit
    return Tracked(bpm, conf, int(new_rec.sum()), int((~ok & ~new_rec).sum()))
