"""A classical spectral tracker: the baseline a learned model has to beat during motion.

The plain spectral baseline (:mod:`ppgedge.evaluate.spectral`) takes each window's largest PPG
peak, so during running or boxing it reports the cadence. Wrist HR trackers of the TROIKA
family fix that with two cheap ideas, both here and nothing else (no learning):

1. *accelerometer suppression*: the PPG spectrum and the accelerometer spectrum are each scaled
   to a peak of one; ``acc_weight`` times the accelerometer's is subtracted from the PPG's, so
   bins where the wrist moves lose their power (only when the wrist does move: windows whose
   accelerometer standard deviation is under ``motion_g`` keep their PPG spectrum);
2. *window-to-window search*: the first window of each recording takes the global peak; every
   later one takes the peak within ``search_bpm`` of the previous estimate and moves at most
   ``max_step_bpm`` toward it (a heart does not jump 40 BPM in 2 s); a window with no local
   maximum inside the search range keeps the previous estimate; after ``reacquire`` windows
   in a row whose global peak lies outside the range, the track jumps to it (a lost track).

Its four numbers are chosen on non-test subjects (:func:`choose_params`), like every choice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ppgedge.data.format import BPM_MAX, BPM_MIN, Dataset
from ppgedge.data.preprocess import zscore_numpy
from ppgedge.errors import PpgedgeError

NFFT = 2048
# The grid :func:`choose_params` scores on the non-test subjects: 3 x 2 x 2 x 3 = 36 settings.
GRID_SEARCH_BPM = (15.0, 20.0, 30.0)
GRID_ACC_WEIGHT = (0.5, 1.0)
GRID_MAX_STEP_BPM = (4.0, 6.0)
GRID_REACQUIRE = (0, 6, 10)


@dataclass(frozen=True)
class TrackerParams:
    """The tracker's three choices, and the motion threshold that switches suppression on."""

    search_bpm: float = 12.0
    acc_weight: float = 0.5
    max_step_bpm: float = 4.0
    reacquire: int = 0  # after this many windows whose global peak lies outside the search
    # range, jump to it (0: never): a lost track is found again
    motion_g: float = 0.05

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def spectra(
    x: np.ndarray, rate_hz: float, ppg: int, acc: list[int], nfft: int = NFFT
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(N, C, T) windows -> the BPM axis, the PPG and the summed accelerometer spectra (N, F),
    each scaled to a peak of one, and each window's motion (largest accelerometer std)."""
    taper = np.hanning(x.shape[-1])[None, :]
    bpm = np.fft.rfftfreq(nfft, d=1.0 / rate_hz) * 60.0
    band = (bpm >= BPM_MIN) & (bpm <= BPM_MAX)
    p = np.abs(np.fft.rfft(zscore_numpy(x[:, ppg]) * taper, n=nfft, axis=-1))[:, band] ** 2
    p /= p.max(axis=1, keepdims=True) + 1e-12
    a = np.zeros_like(p)
    motion = np.zeros(len(x))
    if acc:
        raw = np.asarray(x[:, acc], np.float64)
        motion = raw.std(axis=-1).max(axis=1)
        centred = (raw - raw.mean(axis=-1, keepdims=True)) * taper[:, None, :]
        a = (np.abs(np.fft.rfft(centred, n=nfft, axis=-1))[..., band] ** 2).sum(axis=1)
        a /= a.max(axis=1, keepdims=True) + 1e-12
    return bpm[band], p, a, motion


def _local_peak(s: np.ndarray, lo: int, hi: int) -> int | None:
    """Index of the largest local maximum of ``s`` in [lo, hi), or None when there is none."""
    seg = s[lo:hi]
    if len(seg) < 3:
        return None
    inner = (seg[1:-1] >= seg[:-2]) & (seg[1:-1] >= seg[2:]) & (seg[1:-1] > 0)
    if not inner.any():
        return None
    cand = np.flatnonzero(inner) + 1
    return lo + int(cand[np.argmax(seg[cand])])


def track_spectra(
    bpm_axis: np.ndarray,
    ppg_spec: np.ndarray,
    acc_spec: np.ndarray,
    motion: np.ndarray,
    new_sequence: np.ndarray,
    params: TrackerParams,
) -> np.ndarray:
    """Windows in time order -> (N,) BPM; ``new_sequence[i]`` restarts the search at window i."""
    moving = (np.asarray(motion) >= params.motion_g)[:, None]
    s = np.clip(ppg_spec - params.acc_weight * acc_spec * moving, 0.0, None)
    out = np.empty(len(s))
    prev = float("nan")
    outside = 0
    for i in range(len(s)):
        peak = float(bpm_axis[int(np.argmax(s[i]))])
        outside = outside + 1 if abs(peak - prev) > params.search_bpm else 0
        lost = params.reacquire > 0 and outside >= params.reacquire
        if new_sequence[i] or not np.isfinite(prev) or lost:
            prev, outside = peak, 0
        else:
            lo = int(np.searchsorted(bpm_axis, prev - params.search_bpm))
            hi = int(np.searchsorted(bpm_axis, prev + params.search_bpm, side="right"))
            j = _local_peak(s[i], lo, hi)
            if j is not None:
                step = float(bpm_axis[j]) - prev
                prev += float(np.clip(step, -params.max_step_bpm, params.max_step_bpm))
        out[i] = prev
    return out


def spectral_track(dataset: Dataset, indices: np.ndarray, params: TrackerParams) -> np.ndarray:
    """Track the windows ``indices`` of ``dataset`` (any order; results in that order)."""
    idx = np.asarray(indices)
    if len(idx) == 0:
        return np.zeros(0)
    names = list(dataset.fmt.channels)
    if "ppg" not in names:
        raise PpgedgeError(f"{dataset.path}: the spectral tracker needs a 'ppg' channel")
    acc = [names.index(c) for c in names if c.startswith("acc")]
    order = np.lexsort((np.asarray(dataset.start_s[idx], np.float64), dataset.recording[idx]))
    ordered = idx[order]
    rec = np.asarray(dataset.recording[ordered])
    start = np.asarray(dataset.start_s[ordered], np.float64)
    hop = dataset.fmt.hop_s
    new = np.ones(len(ordered), bool)
    new[1:] = (rec[1:] != rec[:-1]) | (np.abs(np.diff(start) - hop) > 1e-3 * hop + 1e-4)
    axis, p, a, motion = spectra(
        np.asarray(dataset.x[ordered]),
        dataset.fmt.sample_rate_hz,
        names.index("ppg"),
        acc,
    )
    out = np.empty(len(idx))
    out[order] = track_spectra(axis, p, a, motion, new, params)
    return out


def choose_params(dataset: Dataset, indices: np.ndarray) -> tuple[TrackerParams, dict[str, Any]]:
    """The grid setting with the lowest MAE on ``indices`` (non-test subjects only)."""
    idx = np.asarray(indices)
    y = np.asarray(dataset.y[idx], np.float64)
    scores: dict[str, float] = {}
    best: tuple[float, TrackerParams] | None = None
    for r in GRID_SEARCH_BPM:
        for w in GRID_ACC_WEIGHT:
            for step in GRID_MAX_STEP_BPM:
                for n in GRID_REACQUIRE:
                    p = TrackerParams(r, w, step, n)
                    mae = float(np.mean(np.abs(spectral_track(dataset, idx, p) - y)))
                    scores[f"search={r:g} acc={w:g} step={step:g} reacquire={n}"] = mae
                    if best is None or mae < best[0]:
                        best = (mae, p)
    assert best is not None
    return best[1], {"mae": best[0], "configurations": len(scores), "grid": scores}
