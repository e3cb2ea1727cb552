"""The tracker run for a whole grid of settings at once, for the validation choice.

Choosing the tracker scores every setting of the grid (half width, weight, re-acquire cost,
label power: 350) on the validation windows; run one by one that is 350 Python loops over the
windows, seconds per fit and about ten fits per chain. Here the settings of one half width
and all sequences advance together as one array per window, so the Python loop runs once per
window position and half width. The arithmetic is the same as
:func:`ppgedge.models.tracker.filter_sequence`, operation for operation, so the classes are
identical (a test checks it), float and int8 alike.
"""

from __future__ import annotations

import numpy as np

from ppgedge.data.format import BPM_MIN
from ppgedge.models.tracker import FLOOR, N_CLASSES, TransitionPrior, in_sequence_order

_NO_JUMP = -(1 << 40)  # a floor below any move: the same as no re-acquire move
CHUNK_SEQUENCES = 256  # sequences advanced together: bounds the state at 350 x 256 x 180


def _segments(starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Begin and length of each run of consecutive windows, longest first."""
    begin = np.flatnonzero(starts)
    length = np.diff(np.append(begin, len(starts)))
    order = np.argsort(-length, kind="stable")
    return begin[order], length[order]


def _filter_group(
    x: np.ndarray,
    begin: np.ndarray,
    length: np.ndarray,
    costs: np.ndarray,
    jumps: np.ndarray,
    offsets: np.ndarray,
    integer: bool,
) -> np.ndarray:
    """Classes (G, N) for G settings of one half width over the sequences ``begin/length``
    (longest first) of the sorted windows ``x``."""
    g, width = costs.shape
    k = width // 2
    out = np.empty((g, len(x)), np.int64)
    for lo in range(0, len(begin), CHUNK_SEQUENCES):
        b, n_t = begin[lo : lo + CHUNK_SEQUENCES], length[lo : lo + CHUNK_SEQUENCES]
        alpha = np.empty((g, len(b), N_CLASSES), x.dtype)
        for t in range(int(n_t[0])):
            live = int((n_t > t).sum())  # longest first: the live sequences are a prefix
            rows = b[:live] + t
            if t == 0:
                a = np.broadcast_to(x[rows], (g, live, N_CLASSES)).copy()
            else:
                prev = alpha[:, :live]
                move = np.full_like(prev, _NO_JUMP if integer else -np.inf)
                for d in range(-k, k + 1):  # move(j) = max_d prev(j - d) - cost(d)
                    c = costs[:, d + k, None, None]
                    if d >= 0:
                        np.maximum(move[..., d:], prev[..., : N_CLASSES - d] - c, out=move[..., d:])
                    else:
                        np.maximum(move[..., :d], prev[..., -d:] - c, out=move[..., :d])
                move = np.maximum(move, -jumps[:, None, None])
                a = (x[rows][None] + offsets[:, None, :]) + move
            a = a - a.max(axis=2, keepdims=True)
            if integer:
                a = np.maximum(a, FLOOR)
            alpha[:, :live] = a
            out[:, rows] = np.argmax(a, axis=2)
    return out


def grid_bpm(
    logits: np.ndarray,
    recording: np.ndarray,
    start_s: np.ndarray,
    hop_s: float,
    priors: list[TransitionPrior],
    scale: float | None = None,
) -> np.ndarray:
    """float64 (len(priors), N): the tracked BPM of every window (input order) under each
    prior, exactly as :func:`ppgedge.models.tracker.track` gives it one prior at a time."""
    integer = scale is not None
    order, x, ok = in_sequence_order(logits, recording, start_s, hop_s, integer)
    if integer:
        x = x.astype(np.int64)
    n = len(x)
    starts = ~ok
    bpm = np.empty((len(priors), n), np.float64)
    if n == 0:
        return bpm
    begin, length = _segments(starts)
    dt = np.int64 if integer else np.float64
    label_offsets: dict[tuple, np.ndarray] = {}  # the same label prior for most settings

    def offsets_of(p: TransitionPrior) -> np.ndarray:
        key = (p.label_counts, p.label_stretch, p.label_power)
        if key not in label_offsets:
            o = p.int_label_offsets(scale) if integer else p.label_offsets()
            label_offsets[key] = np.zeros(N_CLASSES) if o is None else o
        return label_offsets[key]

    for k in sorted({p.half_width for p in priors}):
        members = [i for i, p in enumerate(priors) if p.half_width == k]
        costs, jumps, offsets = [], [], []
        for i in members:
            p = priors[i]
            if integer:
                c, j = p.int_costs(scale), p.int_jump(scale)
            else:
                c, j = p.costs(), p.jump
            costs.append(c)
            jumps.append((-_NO_JUMP if integer else np.inf) if j is None else j)
            offsets.append(offsets_of(p))
        cls = _filter_group(
            x,
            begin,
            length,
            np.asarray(costs, dt),
            np.asarray(jumps, dt),
            np.asarray(offsets, dt),
            integer,
        )
        bpm[np.ix_(members, order)] = cls + BPM_MIN
    return bpm
