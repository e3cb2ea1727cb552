"""From continuous recordings to fixed windows at the common rate.

Every source (the generator and each importer) produces :class:`Recording` objects in its own
native rates; :func:`window_recordings` resamples them with an anti-aliasing polyphase filter,
cuts ``window_s`` windows every ``hop_s`` seconds and attaches one label per window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

from ppgedge.data.format import BPM_MAX, BPM_MIN, DataFormat, WindowedData
from ppgedge.errors import PpgedgeError


@dataclass
class Recording:
    """One continuous recording of one subject, channels at their native rates.

    Labels come either from ``beat_times_s`` (exact: 60 / mean inter-beat interval inside the
    window) or from a reference series ``labels_bpm`` whose value ``k`` describes the window
    centred at ``label_times_s[k]`` (interpolated at each window centre; exact when the grids
    coincide, as for 8 s / 2 s reference series and the default format).
    """

    name: str
    subject: str
    signals: dict[str, tuple[np.ndarray, float]]
    labels_bpm: np.ndarray | None = None
    label_times_s: np.ndarray | None = None
    beat_times_s: np.ndarray | None = None
    activity_segments: list[tuple[float, float, str]] = field(default_factory=list)


def resample(x: np.ndarray, rate_in: float, rate_out: float) -> np.ndarray:
    """Polyphase resampling with scipy's anti-aliasing FIR; identity when rates match."""
    if abs(rate_in - rate_out) < 1e-9:
        return np.asarray(x, dtype=np.float64)
    ratio = Fraction(rate_out / rate_in).limit_denominator(1000)
    return resample_poly(np.asarray(x, dtype=np.float64), ratio.numerator, ratio.denominator)


def hr_from_beats(beat_times_s: np.ndarray, start_s: float, end_s: float) -> float:
    """Mean heart rate over [start, end): 60 / mean of the inter-beat intervals inside it."""
    inside = beat_times_s[(beat_times_s >= start_s) & (beat_times_s < end_s)]
    if inside.size < 2:
        return float("nan")
    return 60.0 * (inside.size - 1) / float(inside[-1] - inside[0])


def _activity_at(segments: list[tuple[float, float, str]], t: float) -> str | None:
    for start, end, name in segments:
        if start <= t < end:
            return name
    return None


def window_recordings(
    recordings: Sequence[Recording],
    fmt: DataFormat,
    *,
    source: str,
    provenance: dict | None = None,
    drop_out_of_range: bool = False,
) -> WindowedData:
    """Resample, window and label ``recordings`` into one :class:`WindowedData`."""
    xs, ys, subj, act, rec, starts = [], [], [], [], [], []
    subjects: list[str] = []
    activities: list[str] = []
    names: list[str] = []
    n_dropped = 0
    win, hop, rate = fmt.window_samples, fmt.hop_samples, fmt.sample_rate_hz
    for r in recordings:
        missing = [c for c in fmt.channels if c not in r.signals]
        if missing:
            raise PpgedgeError(f"{r.name}: recording lacks channel(s) {missing}")
        chans = []
        for c in fmt.channels:
            samples, native = r.signals[c]
            samples = np.asarray(samples, dtype=np.float64).ravel()
            if not np.isfinite(samples).all():
                raise PpgedgeError(
                    f"{r.name}: channel '{c}' contains NaN or inf samples: "
                    "clean or interpolate the recording before importing"
                )
            chans.append(resample(samples, native, rate))
        length = min(len(c) for c in chans)
        if length < win:
            raise PpgedgeError(
                f"{r.name}: recording is {length / rate:.1f} s long, shorter than one "
                f"{fmt.window_s:g} s window"
            )
        with np.errstate(over="ignore"):  # beyond float32: inf, refused by validate_windows
            sig = np.stack([c[:length] for c in chans]).astype(np.float32)
        if r.subject not in subjects:
            subjects.append(r.subject)
        names.append(r.name)
        for k in range(0, (length - win) // hop + 1):
            s0 = k * hop
            start_s, centre = s0 / rate, s0 / rate + fmt.window_s / 2
            if r.beat_times_s is not None:
                bpm = hr_from_beats(r.beat_times_s, start_s, start_s + fmt.window_s)
            elif r.labels_bpm is not None and r.label_times_s is not None:
                lt = r.label_times_s
                if centre < lt[0] - 1e-6 or centre > lt[-1] + 1e-6:
                    continue  # no reference for this stretch
                bpm = float(np.interp(centre, lt, r.labels_bpm))
            else:
                raise PpgedgeError(f"{r.name}: recording has neither beat times nor labels")
            if drop_out_of_range and not (BPM_MIN <= bpm <= BPM_MAX):
                n_dropped += 1
                continue
            name = _activity_at(r.activity_segments, centre)
            if name is not None and name not in activities:
                activities.append(name)
            xs.append(sig[:, s0 : s0 + win])
            ys.append(bpm)
            subj.append(subjects.index(r.subject))
            act.append(activities.index(name) if name is not None else -1)
            rec.append(len(names) - 1)
            starts.append(start_s)
    prov = dict(provenance or {})
    prov.setdefault("resampling", f"scipy.signal.resample_poly to {rate:g} Hz")
    if drop_out_of_range:
        prov["dropped_out_of_range_windows"] = n_dropped
    n_ch = len(fmt.channels)
    with np.errstate(over="ignore"):
        y = np.asarray(ys, np.float32)
    return WindowedData(
        x=np.stack(xs) if xs else np.zeros((0, n_ch, win), np.float32),
        y=y,
        subject=np.asarray(subj, np.int32),
        activity=np.asarray(act, np.int16),
        recording=np.asarray(rec, np.int32),
        start_s=np.asarray(starts, np.float32),
        subjects=subjects,
        activities=activities,
        recordings=names,
        fmt=fmt,
        source=source,
        provenance=prov,
    )
