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
than ``J``; without it the filter can only crawl ``K`` classes per hop. With a label power
``tau`` every window after the first adds ``tau * (log q_max - log q(j))``, ``q`` the heart-rate
distribution the network was trained on (the training labels, widened by the label-scaled time
stretch the training used): the network's logits are posteriors, which already hold ``q``, and
a filter that adds them up window after window counts ``q`` once per window, pulling a long
track toward the common heart rates; dividing the posterior by the prior ("scaled likelihood",
the hybrid HMM/network decoder of Bourlard and Morgan) counts it once, in the first window.
The estimate is the
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
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ppgedge.data.format import BPM_MIN
from ppgedge.errors import PpgedgeError

N_CLASSES = 180
FLOOR = -(1 << 20)  # scores below max - 2^20 logit quanta are clamped (bounded int32 state)
MAX_COST = 1 << 15  # integer costs are capped so int32 sums never overflow
PEAK_HALF_WIDTH = 5  # the confidence compares the peak with the best class > 5 BPM away
MAX_HALF_WIDTH = 30
LABEL_FLOOR = 0.05  # share of the label prior spread evenly: caps the boost of unseen classes
STRETCH_POINTS = 41  # stretch factors summed over when widening the label prior
_SENTINEL = -(1 << 40)


MAX_COUNT = 1 << 53  # histogram counts beyond this are no real window counts (and overflow)


def _counts_ok(counts: tuple[int, ...]) -> bool:
    return all(0 <= c <= MAX_COUNT for c in counts)


@dataclass(frozen=True)
class LabelStretch:
    """The label-scaled time stretch a network was trained with (train.time_stretch): it
    widens the heart rates the network saw beyond the raw labels."""

    mode: str  # "both", "slower" or "off"
    max_stretch: float
    p: float  # share of the windows stretched

    def __post_init__(self) -> None:
        if self.mode not in ("both", "slower", "off") or not (
            math.isfinite(self.max_stretch) and math.isfinite(self.p) and 0 <= self.p <= 1
        ):
            raise PpgedgeError(f"tracker prior: bad time stretch record {self!r}: refit it")

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "max_stretch": self.max_stretch, "p": self.p}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LabelStretch:
        return cls(str(d["mode"]), float(d["max_stretch"]), float(d["p"]))


@dataclass(frozen=True)
class TransitionPrior:
    """The BPM-change-per-hop histogram (classes ``-half_width..half_width``) and its weight."""

    counts: tuple[int, ...]  # raw counts of each change on the training subjects
    half_width: int = 8  # K: the largest change per hop the tracker allows
    weight: float = 1.0  # scale of -log p(d) relative to the logits (chosen on validation)
    hop_s: float = 2.0
    n_pairs: int = 0  # consecutive training window pairs counted
    jump: float | None = None  # re-acquire cost J in logit units (None: no jump move)
    label_counts: tuple[int, ...] | None = None  # training windows per BPM class
    label_stretch: LabelStretch | None = None  # the training's label-scaled time stretch
    label_power: float | None = None  # tau: divide the posterior by prior^tau (None: off)

    def __post_init__(self) -> None:
        k = len(self.counts) // 2
        if len(self.counts) != 2 * k + 1 or not 0 <= self.half_width <= k:
            raise PpgedgeError(
                f"tracker prior: {len(self.counts)} counts for half width {self.half_width}: "
                "refit it with ppgedge"
            )
        if not (math.isfinite(self.weight) and self.weight >= 0) or not _counts_ok(self.counts):
            raise PpgedgeError("tracker prior: negative or non-finite weight or counts: refit it")
        if self.jump is not None and not (math.isfinite(self.jump) and self.jump >= 0):
            raise PpgedgeError("tracker prior: the re-acquire cost must be >= 0: refit it")
        if self.label_counts is not None and (
            len(self.label_counts) != N_CLASSES
            or not _counts_ok(self.label_counts)
            or sum(self.label_counts) == 0
        ):
            raise PpgedgeError(
                f"tracker prior: the label histogram needs {N_CLASSES} non-negative counts, "
                "not all zero: refit it"
            )
        if self.label_power is not None and (
            self.label_counts is None
            or not (math.isfinite(self.label_power) and self.label_power >= 0)
        ):
            raise PpgedgeError(
                "tracker prior: a label power needs the label histogram and must be >= 0: refit it"
            )

    def with_params(
        self,
        half_width: int,
        weight: float,
        jump: float | None = None,
        label_power: float | None = None,
    ) -> TransitionPrior:
        return replace(
            self, half_width=half_width, weight=weight, jump=jump, label_power=label_power
        )

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

    def label_prior(self) -> np.ndarray:
        """float64 (180,) heart-rate distribution the network was trained on: the training
        labels' histogram, widened by the label-scaled time stretch as the training drew it,
        mixed with :data:`LABEL_FLOOR` of the uniform distribution."""
        if self.label_counts is None:
            raise PpgedgeError("tracker prior: no label histogram: refit the tracker")
        h = np.asarray(self.label_counts, np.float64)
        h /= h.sum()
        st = self.label_stretch
        if st is not None and st.p > 0 and st.max_stretch > 1 and st.mode != "off":
            u = (np.arange(STRETCH_POINTS) + 0.5) / STRETCH_POINTS
            if st.mode == "both":  # log f uniform in [-log m, log m], label x f
                factors = np.exp((2 * u - 1) * math.log(st.max_stretch))
            else:  # "slower": f uniform in [1, m], label / f
                factors = 1.0 / (1 + u * (st.max_stretch - 1))
            bpm = np.arange(N_CLASSES) + BPM_MIN
            moved = np.zeros(N_CLASSES)
            for f in factors:
                np.add.at(moved, bpm_class(bpm * f), h / STRETCH_POINTS)
            h = (1 - st.p) * h + st.p * moved
        return (1 - LABEL_FLOOR) * h + LABEL_FLOOR / N_CLASSES

    def label_offsets(self) -> np.ndarray | None:
        """float64 (180,) ``tau * (log q_max - log q(j))`` added to every window's logits after
        the first of a sequence (None: no label power)."""
        if self.label_power is None:
            return None
        logq = np.log(self.label_prior())
        return self.label_power * (logq.max() - logq)

    def int_label_offsets(self, scale: float) -> np.ndarray | None:
        """int64 label offsets in logit quanta of ``scale`` (None: no label power)."""
        off = self.label_offsets()
        if off is None:
            return None
        if not (math.isfinite(scale) and scale > 0):
            raise PpgedgeError(f"tracker: logit scale {scale!r} must be positive and finite")
        return np.minimum(np.rint(off / scale), MAX_COST).astype(np.int64)

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
        if self.label_counts is not None:
            d["label_counts"] = list(self.label_counts)
            st = self.label_stretch
            d["label_stretch"] = None if st is None else st.to_dict()
        if self.label_power is not None:
            d["label_power"] = self.label_power
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
                None if d.get("label_counts") is None else tuple(int(c) for c in d["label_counts"]),
                None
                if d.get("label_stretch") is None
                else LabelStretch.from_dict(d["label_stretch"]),
                None if d.get("label_power") is None else float(d["label_power"]),
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
    stretch: LabelStretch | None = None,
) -> TransitionPrior:
    """Histogram of the class change between consecutive windows and of the classes
    (training labels only); ``stretch``: the training's time stretch, for the label prior."""
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
    labels = np.bincount(bpm_class(np.asarray(bpm, np.float64)), minlength=N_CLASSES)
    return TransitionPrior(
        tuple(int(c) for c in counts),
        hop_s=hop_s,
        n_pairs=int(ok.sum()),
        label_counts=tuple(int(c) for c in labels),
        label_stretch=stretch,
    )


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
    offsets: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Run the filter over consecutive windows; ``starts[i]`` True resets before window i.

    Integer ``logits`` (int8 values) need integer ``costs`` (and ``jump``, ``offsets``) and
    give the bit-exact firmware result; float logits run the same recursion in float64.
    ``jump``: the re-acquire cost (None: none); ``offsets``: the label prior's per-class
    offsets, added to every window but a sequence's first (None: none). Returns (class index,
    margin)."""
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
    off = None if offsets is None else np.asarray(offsets, dt)
    if off is not None and off.shape != (N_CLASSES,):
        raise PpgedgeError(f"tracker: {off.shape} label offsets, need ({N_CLASSES},)")
    for t in range(n):
        if t == 0 or starts[t]:
            a = x[t].copy()
        else:
            pad[k : k + N_CLASSES] = alpha
            # prior(j) = max_d alpha(j - d) - cost(d), d = -K..K: pad[j + i] with d = K - i
            move = (windows - rcost).max(axis=1)
            if jump is not None:  # alpha peaks at 0: a jump from the best class costs J
                move = np.maximum(move, -jump)
            a = x[t] + move if off is None else (x[t] + off) + move
        a = a - a.max()
        if integer:
            a = np.maximum(a, FLOOR)
        alpha = a
        j = int(np.argmax(a))  # first maximum, as the C loop's strict '>'
        far = np.abs(classes - j) > PEAK_HALF_WIDTH
        margin[t] = -a[far].max()
        idx[t] = j
    return idx, margin


def in_sequence_order(
    logits: np.ndarray,
    recording: np.ndarray,
    start_s: np.ndarray,
    hop_s: float,
    integer: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked logits sorted by (recording, start): the order, the sorted logits (int64 values
    of int8 when ``integer``, else float64) and which windows follow their predecessor."""
    logits = check_logits(logits)
    n = len(logits)
    if not (len(recording) == len(start_s) == n):
        raise PpgedgeError(
            f"tracker: {n} windows of logits but {len(recording)} recordings and "
            f"{len(start_s)} start times: pass one of each per window"
        )
    order = sequence_order(recording, start_s)
    ok = consecutive(np.asarray(recording)[order], np.asarray(start_s)[order], hop_s)
    if not integer:
        return order, np.asarray(logits, np.float64)[order], ok
    x = np.asarray(logits)[order]
    if x.size and (x.min() < -128 or x.max() > 127 or not np.issubdtype(x.dtype, np.integer)):
        raise PpgedgeError("tracker: quantised logits must be int8 values (-128..127)")
    return order, x, ok


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
    order, x, ok = in_sequence_order(logits, recording, start_s, hop_s, scale is not None)
    n = len(x)
    rec = np.asarray(recording)[order]
    new_rec = np.ones(n, bool)
    new_rec[1:] = rec[1:] != rec[:-1]
    if scale is None:
        costs, jump, offsets = prior.costs(), prior.jump, prior.label_offsets()
        unit = 1.0
    else:
        costs, jump = prior.int_costs(scale), prior.int_jump(scale)
        offsets = prior.int_label_offsets(scale)
        unit = float(scale)
    idx, margin = filter_sequence(x, costs, ~ok, jump, offsets)
    bpm = np.empty(n, np.float64)
    conf = np.empty(n, np.float64)
    bpm[order] = idx + BPM_MIN
    conf[order] = margin.astype(np.float64) * unit
    return Tracked(bpm, conf, int(new_rec.sum()), int((~ok & ~new_rec).sum()))
