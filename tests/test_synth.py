"""The generator is the default data source: it must be reproducible, exact in its labels and
hard in the way real wrist data is hard (motion corrupts the PPG during running)."""

from __future__ import annotations

import numpy as np
import pytest

from ppgedge.data.format import DataFormat, validate_windows
from ppgedge.data.synth import ACTIVITIES, VERSION, generate_recordings, synthesize
from ppgedge.errors import PpgedgeError

N_SUBJECTS, MINUTES = 3, 3.0


@pytest.fixture(scope="module")
def small():
    return synthesize(N_SUBJECTS, MINUTES, seed=7)


def spectral_bpm(x: np.ndarray, rate_hz: float) -> np.ndarray:
    """The classic baseline: strongest PPG frequency in 0.5-3.5 Hz of each window."""
    ppg = x[:, 0, :].astype(np.float64)
    ppg = (ppg - ppg.mean(1, keepdims=True)) / (ppg.std(1, keepdims=True) + 1e-3)
    spec = np.abs(np.fft.rfft(ppg * np.hanning(ppg.shape[1]), 2048, axis=1))
    freqs = np.fft.rfftfreq(2048, 1.0 / rate_hz)
    band = (freqs >= 0.5) & (freqs <= 3.5)
    return 60.0 * freqs[band][np.argmax(spec[:, band], axis=1)]


def test_same_seed_same_data(small) -> None:
    again = synthesize(N_SUBJECTS, MINUTES, seed=7)
    assert np.array_equal(small.x, again.x)
    assert np.array_equal(small.y, again.y)
    other = synthesize(N_SUBJECTS, MINUTES, seed=8)
    assert not np.array_equal(small.x[: len(other)], other.x[: len(small)])
    assert not np.array_equal(small.y[: len(other)], other.y[: len(small)])


def test_subject_independent_of_count() -> None:
    two = generate_recordings(2, 2.0, seed=3)
    three = generate_recordings(3, 2.0, seed=3)
    for a, b in zip(two, three[:2], strict=True):
        assert a.name == b.name
        assert np.array_equal(a.beat_times_s, b.beat_times_s)
        assert a.activity_segments == b.activity_segments
        for ch in ("ppg", "acc_x", "acc_y", "acc_z"):
            assert np.array_equal(a.signals[ch][0], b.signals[ch][0])
    assert [r.subject for r in three] == ["syn00", "syn01", "syn02"]


def test_labels_are_the_beats_heart_rate(small) -> None:
    recs = generate_recordings(N_SUBJECTS, MINUTES, seed=7)
    win = small.fmt.window_s
    rng = np.random.default_rng(0)
    for i in rng.choice(len(small), size=25, replace=False):
        beats = recs[small.recording[i]].beat_times_s
        start = float(small.start_s[i])
        inside = [b for b in beats.tolist() if start <= b < start + win]
        n_intervals = len(inside) - 1
        expected = 60.0 * n_intervals / (inside[-1] - inside[0])
        assert small.y[i] == pytest.approx(expected, rel=1e-5)


def test_shapes_ranges_and_activities(small) -> None:
    validate_windows(small)
    assert small.x.shape == (len(small), 4, 256)
    assert np.isfinite(small.x).all()
    assert small.y.min() >= 40.0 and small.y.max() <= 200.0
    assert sorted(small.activities) == sorted(ACTIVITIES)
    codes = set(small.activity.tolist())
    assert codes == set(range(len(ACTIVITIES)))
    assert small.subjects == ["syn00", "syn01", "syn02"]
    assert small.provenance["version"] == VERSION
    assert small.provenance["seed"] == 7
    for rec in generate_recordings(1, MINUTES, seed=7):
        names = {name for _, _, name in rec.activity_segments}
        assert names == set(ACTIVITIES)
        ppg, rate = rec.signals["ppg"]
        assert rate == 64.0 and ppg.size == int(MINUTES * 60 * 64)


def test_other_format() -> None:
    fmt = DataFormat(sample_rate_hz=25.0, window_s=10.0, hop_s=5.0, channels=("ppg", "acc_z"))
    data = synthesize(1, 1.0, seed=1, fmt=fmt)
    assert data.x.shape[1:] == (2, 250)


def test_motion_defeats_the_spectral_baseline_during_running() -> None:
    data = synthesize(8, 10.0, seed=0)
    err = np.abs(spectral_bpm(data.x, data.fmt.sample_rate_hz) - data.y)
    acts = np.asarray(data.activities)[data.activity]
    rest, run = err[acts == "rest"].mean(), err[acts == "run"].mean()
    assert 1.0 < rest < 10.0  # rest is easy but not trivial
    assert 10.0 < run < 50.0  # running is hard but the pulse is still there
    assert run >= 3.0 * rest
    # Labels span the range a wrist model must cover.
    assert data.y.min() < 60.0 and data.y.max() > 175.0


@pytest.mark.parametrize(
    "kwargs",
    [{"n_subjects": 0}, {"minutes_per_subject": 0.1}, {"seed": -1}, {"rate_hz": 4.0}],
)
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(PpgedgeError):
        generate_recordings(**kwargs)
