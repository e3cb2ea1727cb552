"""Two-sided time stretch: successors found by recording and start, a seamless join, labels
scaled with the rhythm, and the trainer running with it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from ppgedge.data.format import Dataset
from ppgedge.data.loader import WindowSource
from ppgedge.data.preprocess import zscore_numpy
from ppgedge.data.splits import holdout
from ppgedge.errors import PpgedgeError
from ppgedge.models.checkpoint import load_checkpoint
from ppgedge.pipeline.config import SCHEMA, TEMPLATE, validate
from ppgedge.train.time_stretch import (
    MODES,
    _extend,
    successor_positions,
    time_stretch,
    two_sided_stretch,
)
from ppgedge.train.trainer import TrainConfig, augment_batch, train

T, HOP, RATE = 256, 64, 32.0


def _sine_pair(bpm: np.ndarray, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows and their successors (one hop later) cut from one sine per row, z-scored."""
    rng = np.random.default_rng(seed)
    t = np.arange(T + HOP) / RATE
    phase = rng.uniform(0, 2 * np.pi, (len(bpm), 1))
    raw = np.sin(2 * np.pi * bpm[:, None] / 60 * t[None, :] + phase) * 3 + 7
    raw = raw[:, None, :].astype(np.float32)
    return torch.from_numpy(zscore_numpy(raw[..., :T])), torch.from_numpy(
        zscore_numpy(raw[..., HOP:])
    )


def _peak_bpm(x: torch.Tensor) -> np.ndarray:
    spec = np.abs(np.fft.rfft(x[:, 0].numpy() * np.hanning(T), n=8 * T))
    freqs = np.fft.rfftfreq(8 * T, 1 / RATE) * 60
    return freqs[spec.argmax(1)]


def test_join_equals_the_signal_on_the_first_window_scale() -> None:
    rng = np.random.default_rng(1)
    raw = np.cumsum(rng.standard_normal((3, 4, T + HOP)), axis=-1).astype(np.float32)
    a, b = zscore_numpy(raw[..., :T]), zscore_numpy(raw[..., HOP:])
    a[1] *= -1  # an axis flip on one side only is undone by the fitted map's sign
    want = (raw - raw[..., :T].mean(-1, keepdims=True)) / raw[..., :T].std(-1, keepdims=True)
    want[1] *= -1
    got = _extend(torch.from_numpy(a), torch.from_numpy(b), HOP).numpy()
    assert got.shape == (3, 4, T + HOP)
    np.testing.assert_allclose(got, want, atol=2e-3)


def test_speed_up_and_slow_down_move_rhythm_and_label_together() -> None:
    bpm = np.linspace(60, 150, 24)
    x, nxt = _sine_pair(bpm)
    y = torch.from_numpy(bpm.astype(np.float32))
    succ = np.arange(24)

    def fetch(pos: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return nxt[pos], y[pos]

    out, y2 = two_sided_stretch(x, y, np.random.default_rng(0), 1.25, 1.0, succ, fetch, HOP)
    ratio = (y2 / y).numpy()
    assert (ratio > 1.01).sum() >= 6 and (ratio < 0.99).sum() >= 6  # both directions drawn
    assert ratio.max() <= 1.25 + 1e-6 and ratio.min() >= 0.8 - 1e-6
    # the dominant rhythm of every stretched window is its new label (0.25 BPM FFT bins)
    np.testing.assert_allclose(_peak_bpm(out), y2.numpy(), atol=1.0)
    # same generator, same batch: the same result
    out_b, y_b = two_sided_stretch(x, y, np.random.default_rng(0), 1.25, 1.0, succ, fetch, HOP)
    assert torch.equal(out, out_b) and torch.equal(y2, y_b)


def test_no_successor_means_slower_only() -> None:
    x, _ = _sine_pair(np.full(32, 100.0))
    y = torch.full((32,), 100.0)

    def fetch(pos: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        raise AssertionError("no successor may be fetched")

    none = np.full(32, -1)
    out, y2 = two_sided_stretch(x, y, np.random.default_rng(2), 1.25, 1.0, none, fetch, HOP)
    assert (y2 < 100).all() and (y2 >= 80 - 1e-4).all()
    np.testing.assert_allclose(_peak_bpm(out), y2.numpy(), atol=1.0)
    # a hop longer than half the window leaves too little overlap to join: also slower only
    out, y3 = two_sided_stretch(
        x, y, np.random.default_rng(2), 1.25, 1.0, np.arange(32), fetch, 200
    )
    assert (y3 <= 100).all()


def test_one_sided_stretch_only_lowers_labels() -> None:
    x, _ = _sine_pair(np.full(64, 120.0))
    _, y = time_stretch(x, torch.full((64,), 120.0), np.random.default_rng(0), 1.25, 1.0)
    assert (y <= 120).all() and y.min() < 100


def test_successors_follow_recording_and_start(tiny_dataset: Dataset) -> None:
    idx = np.arange(len(tiny_dataset))
    succ = successor_positions(tiny_dataset, idx)
    has = succ >= 0
    assert 0.8 < has.mean() < 1.0  # every window but the last of each recording
    hop = tiny_dataset.fmt.hop_s
    rec, start = tiny_dataset.recording, tiny_dataset.start_s
    np.testing.assert_array_equal(rec[succ[has]], rec[idx[has]])
    np.testing.assert_allclose(start[succ[has]], start[idx[has]] + hop, atol=1e-3)
    # the successor's samples continue the window's own (the windows overlap by window - hop)
    k = int(np.flatnonzero(has)[0])
    h = tiny_dataset.fmt.hop_samples
    np.testing.assert_array_equal(tiny_dataset.x[succ[k]][:, :-h], tiny_dataset.x[k][:, h:])
    # a subset: successors outside it do not count
    odd = idx[1::2]
    assert (successor_positions(tiny_dataset, odd) == -1).all()
    assert successor_positions(tiny_dataset, idx[:0]).shape == (0,)


def test_trainer_runs_two_sided_and_rejects_unknown_mode(
    tiny_dataset: Dataset, tmp_path: Path
) -> None:
    split = holdout(tiny_dataset.subjects, seed=0)
    cfg = TrainConfig(arch="resnet_micro", epochs=1, seed=0, time_stretch="both")
    ck = train(tiny_dataset, split, tmp_path / "m.pt", cfg, device="cpu")
    assert load_checkpoint(tmp_path / "m.pt").training["config"]["time_stretch"] == "both"
    assert np.isfinite(ck.metrics["val_mae"])
    src = WindowSource(tiny_dataset, np.arange(8), ("ppg",))
    x, y = torch.from_numpy(src.windows(np.arange(8))), torch.from_numpy(src.y[:8])
    with pytest.raises(PpgedgeError, match="unknown time_stretch 'sideways'"):
        augment_batch(
            x, y, np.random.default_rng(0), ("ppg",), TrainConfig(time_stretch="sideways")
        )


def test_two_sided_is_the_default_and_checked() -> None:
    assert TrainConfig().time_stretch == "both"
    assert validate(tomllib.loads(TEMPLATE), "template")["run"]["time_stretch"] == "both"
    # spelled out in the config schema (validated before torch is imported): must not drift
    assert SCHEMA["run"]["time_stretch"][0] == MODES
    with pytest.raises(PpgedgeError, match="time_stretch"):
        validate({"run": {"time_stretch": "faster"}}, "cfg")
    # without successors (a caller with lone windows) nothing is sped up
    x, _ = _sine_pair(np.full(32, 100.0))
    y = torch.full((32,), 100.0)
    _, y2 = augment_batch(x, y, np.random.default_rng(0), ("ppg",), TrainConfig(stretch_p=1.0))
    assert (y2 <= 100).all() and (y2 < 99).any()


def test_sped_up_reads_held_out_windows_at_higher_heart_rates(tiny_dataset: Dataset) -> None:
    """The fixed-factor speed-up of held-out windows: only windows with a successor, the
    rhythm and the label both multiplied by the factor, the same output every call."""
    from ppgedge.train.time_stretch import sped_up

    idx = np.arange(len(tiny_dataset))
    src = WindowSource(tiny_dataset, idx, ["ppg"])
    pos, x, y = sped_up(src, 1.2)
    succ = successor_positions(tiny_dataset, idx)
    np.testing.assert_array_equal(pos, np.flatnonzero(succ >= 0))
    assert x.shape == (len(pos), 1, tiny_dataset.x.shape[2])
    lo = np.minimum(src.y[pos], src.y[succ[pos]]) * 1.2
    hi = np.maximum(src.y[pos], src.y[succ[pos]]) * 1.2
    assert ((y.numpy() >= lo - 1e-3) & (y.numpy() <= hi + 1e-3)).all()
    pos2, x2, y2 = sped_up(src, 1.2)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    with pytest.raises(ValueError, match="factor"):
        sped_up(src, 1.5)


def test_sped_up_moves_the_rhythm_with_the_label(tiny_dataset: Dataset) -> None:
    """The dominant rhythm of a sped-up window is the original's times the factor (spectral
    peak of the PPG channel, 8 s windows: 1.9 BPM FFT bins at 4x zero padding)."""
    from ppgedge.train.time_stretch import sped_up

    src = WindowSource(tiny_dataset, np.arange(len(tiny_dataset)), ["ppg"])
    pos, x, _ = sped_up(src, 1.25)
    rate, t = tiny_dataset.fmt.sample_rate_hz, tiny_dataset.x.shape[2]

    def peak(w: np.ndarray) -> np.ndarray:
        spec = np.abs(np.fft.rfft(w[:, 0] * np.hanning(t), n=4 * t))
        freqs = np.fft.rfftfreq(4 * t, 1 / rate) * 60
        band = (freqs > 30) & (freqs < 260)
        return freqs[band][spec[:, band].argmax(1)]

    before, after = peak(src.windows(pos)), peak(x.numpy())
    assert np.median(np.abs(after - 1.25 * before)) < 2.5
