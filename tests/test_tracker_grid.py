"""The whole-grid tracker (the validation choice's fast path) gives exactly what the
one-setting tracker gives, float and int8, across recordings, gaps and uneven lengths."""

from __future__ import annotations

import numpy as np

from ppgedge.evaluate.tracker_grid import grid_bpm
from ppgedge.models import tracker as T


def _windows(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits peaked at a drifting heart rate with outliers, in shuffled order: three
    recordings of uneven length, one with a dropped window (a gap)."""
    lengths = (70, 23, 41)
    rec = np.concatenate([np.full(n, r) for r, n in enumerate(lengths)])
    start = np.concatenate([np.arange(n) * 2.0 for n in lengths])
    start[rec == 0] += np.where(np.arange(70) >= 30, 2.0, 0.0)  # a gap after window 30
    hr = np.clip(90 + np.cumsum(rng.normal(0, 1.5, len(rec))), 40, 200)
    peak = np.where(rng.random(len(rec)) < 0.2, rng.uniform(0, 179, len(rec)), hr - 30)
    cls = np.arange(180)
    x = 6.0 - 0.05 * (cls[None, :] - peak[:, None]) ** 2 + rng.normal(0, 1.0, (len(rec), 180))
    perm = rng.permutation(len(rec))
    return x[perm], rec[perm], start[perm]


def test_grid_matches_one_setting_at_a_time() -> None:
    rng = np.random.default_rng(3)
    x, rec, start = _windows(rng)
    labels = tuple(int(c) for c in np.bincount(rng.integers(40, 120, 400), minlength=180))
    base = T.TransitionPrior(
        tuple(int(c) for c in rng.integers(0, 50, 61)),
        label_counts=labels,
        label_stretch=T.LabelStretch("both", 1.25, 0.5),
    )
    priors = [
        base.with_params(k, w, j, tau)
        for k in (0, 3, 12)
        for w in (0.05, 1.0)
        for j in (None, 1.5)
        for tau in (None, 1.0)
    ]
    got = grid_bpm(x, rec, start, 2.0, priors)
    want = np.stack([T.track(x, rec, start, 2.0, p).bpm for p in priors])
    assert np.array_equal(got, want)
    q = np.clip(np.rint(x * 8), -128, 127).astype(np.int8)
    got = grid_bpm(q, rec, start, 2.0, priors, scale=0.125)
    want = np.stack([T.track(q, rec, start, 2.0, p, scale=0.125).bpm for p in priors])
    assert np.array_equal(got, want)
    assert len({tuple(row) for row in got}) > 4  # the settings really differ
    assert grid_bpm(x[:0], rec[:0], start[:0], 2.0, priors).shape == (len(priors), 0)
