"""The temporal tracker: its recursion, sequence handling, bad input, the prior fitted on
training labels, the validation choice, and the C tracker bit-exact with Python."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from ppgedge.errors import PpgedgeError
from ppgedge.models import tracker as T


def _naive(
    x: np.ndarray,
    cost: np.ndarray,
    starts: np.ndarray,
    jump: int | None = None,
    offsets: np.ndarray | None = None,
) -> tuple[list[int], list[int]]:
    """The recursion written out loop by loop, independently of the vectorised one (``jump``:
    a move from the best previous class to any class at that cost; ``offsets``: added to the
    logits of every window but a sequence's first)."""
    k = len(cost) // 2
    alpha: list[int] = []
    out, margins = [], []
    for t in range(len(x)):
        if t == 0 or starts[t]:
            a = [int(v) for v in x[t]]
        else:
            a = []
            for j in range(180):
                best = max(
                    alpha[j - d] - int(cost[d + k]) for d in range(-k, k + 1) if 0 <= j - d < 180
                )
                if jump is not None:
                    best = max(best, max(alpha) - jump)
                off = 0 if offsets is None else int(offsets[j])
                a.append(int(x[t][j]) + off + best)
        m = max(a)
        a = [max(v - m, T.FLOOR) for v in a]
        j = a.index(0)
        out.append(j)
        margins.append(-max(v for i, v in enumerate(a) if abs(i - j) > T.PEAK_HALF_WIDTH))
        alpha = a
    return out, margins


def _sequence_logits(rng: np.random.Generator, n: int, hr0: float = 80.0) -> tuple:
    """int8-like logits peaked at a drifting heart rate, with some windows' peaks thrown off."""
    hr = np.clip(hr0 + np.cumsum(rng.normal(0, 1.0, n)), 35, 200)
    cls = np.arange(180)
    peak = hr - 30
    outlier = rng.random(n) < 0.2
    peak = np.where(outlier, rng.uniform(0, 179, n), peak)
    q = np.rint(100 - 4.0 * (cls[None, :] - peak[:, None]) ** 2 / 10 + rng.normal(0, 6, (n, 180)))
    return np.clip(q, -128, 127).astype(np.int8), hr


def test_integer_filter_matches_the_written_out_recursion() -> None:
    rng = np.random.default_rng(0)
    x, _ = _sequence_logits(rng, 40)
    prior = T.TransitionPrior(tuple(range(1, 18)), half_width=5, weight=0.5)
    cost = prior.int_costs(0.1)
    starts = np.zeros(40, bool)
    starts[25] = True
    idx, margin = T.filter_sequence(x, cost, starts)
    ref_idx, ref_margin = _naive(x, cost, starts)
    assert idx.tolist() == ref_idx and margin.tolist() == ref_margin
    jump = prior.with_params(5, 0.5, 3.0).int_jump(0.1)
    assert jump == 30
    idx_j, margin_j = T.filter_sequence(x, cost, starts, jump)
    ref_idx, ref_margin = _naive(x, cost, starts, jump)
    assert idx_j.tolist() == ref_idx and margin_j.tolist() == ref_margin
    assert idx_j.tolist() != idx.tolist()  # the jump move changed something on this sequence
    counts = tuple(int(c) for c in np.bincount(rng.integers(30, 90, 500), minlength=180))
    labelled = T.TransitionPrior(prior.counts, 5, 0.5, label_counts=counts, label_power=1.0)
    off = labelled.int_label_offsets(0.1)
    assert off is not None and off.min() == 0 and off.max() > 20
    idx_l, margin_l = T.filter_sequence(x, cost, starts, jump, off)
    ref_idx, ref_margin = _naive(x, cost, starts, jump, off)
    assert idx_l.tolist() == ref_idx and margin_l.tolist() == ref_margin
    assert idx_l.tolist() != idx_j.tolist()  # the label prior changed something too


def test_label_prior_follows_the_training_stretch_and_round_trips() -> None:
    """The label prior is the training labels widened as the time stretch widened them; the
    offsets boost rare heart rates, zero at the most common; records without it read as before."""
    counts = [0] * 180
    counts[100 - 30] = 50  # every training window at 100 BPM
    plain = T.TransitionPrior((1, 2, 1), 1, label_counts=tuple(counts), label_power=1.0)
    both = T.LabelStretch("both", 1.25, 0.5)
    wide = T.TransitionPrior((1, 2, 1), 1, label_counts=tuple(counts), label_stretch=both)
    q0, q1 = plain.label_prior(), wide.label_prior()
    assert np.isclose(q0.sum(), 1) and np.isclose(q1.sum(), 1)
    assert q1[124 - 30] > 10 * q0[124 - 30] and q1[81 - 30] > 10 * q0[81 - 30]
    assert q1[126 - 30] == q0[126 - 30]  # beyond 100 x 1.25 the stretch never reaches
    slower = T.LabelStretch("slower", 1.25, 0.5)
    q2 = T.TransitionPrior((1, 2, 1), 1, label_counts=tuple(counts), label_stretch=slower)
    assert q2.label_prior()[110 - 30] == q0[110 - 30] and q2.label_prior()[85 - 30] > q0[85 - 30]
    off = plain.label_offsets()
    assert off is not None and off[70] == 0 and (off >= 0).all()
    assert np.isclose(off.max(), np.log(q0.max() / q0.min()))
    tuned = wide.with_params(1, 0.5, 2.0, 1.0)
    assert T.TransitionPrior.from_dict(tuned.to_dict()) == tuned
    old = T.TransitionPrior((1, 2, 1), 1)
    assert "label_counts" not in old.to_dict() and old.label_offsets() is None
    with pytest.raises(PpgedgeError, match="label"):
        old.with_params(1, 1.0, None, 1.0)
    with pytest.raises(PpgedgeError, match="label histogram"):
        T.TransitionPrior((1, 2, 1), 1, label_counts=(1, 2))
    huge = {**tuned.to_dict(), "label_counts": [10**400] + [0] * 179}  # a crafted record
    with pytest.raises(PpgedgeError, match="label histogram"):
        T.TransitionPrior.from_dict(huge)
    with pytest.raises(PpgedgeError, match="counts"):
        T.TransitionPrior.from_dict({**tuned.to_dict(), "counts": [1, 10**400, 1]})


def test_reacquire_leaves_a_wrong_track_the_band_limited_filter_keeps() -> None:
    """A track settled at 60 BPM, then the evidence moves to 150 BPM and stays: without a jump
    the filter crawls K classes per hop (or stays); with one it moves within a few windows."""
    cls = np.arange(180)

    def peaked(bpm: float, height: float) -> np.ndarray:
        return np.clip(np.rint(height - 2.0 * np.abs(cls - (bpm - 30))), -128, 127)

    x = np.stack([peaked(60, 60)] * 20 + [peaked(150, 60)] * 10)
    x = x.astype(np.int8)
    prior = T.TransitionPrior((1, 5, 20, 60, 20, 5, 1), half_width=3, weight=4.0)
    starts = np.zeros(len(x), bool)
    plain, _ = T.filter_sequence(x, prior.int_costs(0.1), starts)
    jumped, _ = T.filter_sequence(x, prior.int_costs(0.1), starts, 50)
    assert (plain[:20] == 30).all() and (jumped[:20] == 30).all()
    assert abs(int(jumped[-1]) - 120) <= 1 and abs(int(plain[-1]) - 120) > 30
    assert T.TransitionPrior.from_dict(prior.with_params(3, 4.0, 5.0).to_dict()).jump == 5.0
    assert "jump" not in prior.to_dict() and T.TransitionPrior.from_dict(prior.to_dict()) == prior
    with pytest.raises(PpgedgeError, match="re-acquire"):
        prior.with_params(3, 1.0, -1.0)


def test_tracking_rejects_outliers_and_resets_at_recordings_and_gaps() -> None:
    rng = np.random.default_rng(1)
    x, hr = _sequence_logits(rng, 120)
    prior = T.TransitionPrior((1, 5, 20, 60, 20, 5, 1), half_width=3, weight=1.0)
    rec = np.repeat([0, 1], 60).astype(np.int32)
    start = np.concatenate([np.arange(60) * 2.0, np.arange(60) * 2.0]).astype(np.float32)
    start[90:] += 10.0  # a gap of 5 hops inside recording 1
    perm = rng.permutation(120)  # input order must not matter
    tr = T.track(x[perm], rec[perm], start[perm], 2.0, prior, scale=0.1)
    per_window = x.argmax(1) + 30
    assert np.abs(tr.bpm - hr[perm]).mean() < 0.5 * np.abs(per_window[perm] - hr[perm]).mean()
    assert (tr.sequences, tr.gaps) == (2, 1)
    # a reset means the window after the gap equals a fresh start on it
    fresh = T.track(x[90:], rec[90:], start[90:], 2.0, prior, scale=0.1)
    assert np.array_equal(tr.bpm[np.argsort(perm)][90:], fresh.bpm)
    # float logits run the same recursion without quantisation
    tf = T.track(x.astype(np.float32) * 0.1, rec, start, 2.0, prior)
    assert np.abs(tf.bpm - hr).mean() < np.abs(per_window - hr).mean()


def test_bad_input_is_a_one_line_error() -> None:
    prior = T.TransitionPrior((1, 2, 1), half_width=1)
    with pytest.raises(PpgedgeError, match="shape"):
        T.track(np.zeros((4, 10), np.int8), np.zeros(4), np.arange(4.0), 2.0, prior, scale=0.1)
    with pytest.raises(PpgedgeError, match="one of each"):
        T.track(np.zeros((4, 180), np.int8), np.zeros(3), np.arange(4.0), 2.0, prior, scale=0.1)
    with pytest.raises(PpgedgeError, match="int8"):
        T.track(np.full((2, 180), 300), np.zeros(2), np.arange(2.0), 2.0, prior, scale=0.1)
    with pytest.raises(PpgedgeError, match="half width"):
        T.TransitionPrior((1, 2, 1), half_width=2)


def test_prior_is_fitted_on_consecutive_training_windows(tiny_dataset) -> None:
    d = tiny_dataset
    prior = T.fit_prior(d.y[:], d.recording[:], d.start_s[:], d.fmt.hop_s)
    assert prior.n_pairs == len(d) - len(np.unique(d.recording))
    counts = np.asarray(prior.counts)
    assert counts.argmax() in (len(counts) // 2 - 1, len(counts) // 2, len(counts) // 2 + 1)
    assert T.TransitionPrior.from_dict(prior.to_dict()) == prior
    assert prior.costs().min() == 0.0


def spectral_logits(ppg: np.ndarray, rate_hz: float) -> np.ndarray:
    """int8 'logits' from real windows: the log periodogram at each class's BPM (a model whose
    logits follow the PPG spectrum), so the sequences move as the heart rate does."""
    x = (ppg - ppg.mean(1, keepdims=True)) * np.hanning(ppg.shape[1])[None, :]
    power = np.abs(np.fft.rfft(x, n=2048, axis=1)) ** 2
    bpm = np.fft.rfftfreq(2048, 1.0 / rate_hz) * 60.0
    lp = np.log(np.stack([np.interp(np.arange(30, 210), bpm, p) for p in power]) + 1e-12)
    return np.clip(np.rint(12.0 * (lp - lp.max(1, keepdims=True))) + 127, -128, 127).astype(np.int8)


@pytest.fixture(scope="module")
def real_sequences(tiny_dataset):
    """int8 logits of every synthetic window in (recording, start) order, the tracker's reset
    flags, and a prior fitted on the first three subjects' labels."""
    d = tiny_dataset
    order = T.sequence_order(d.recording[:], d.start_s[:])
    ppg = np.asarray(d.x[order][:, d.channel_index(["ppg"])[0]], np.float64)
    q = spectral_logits(ppg, d.fmt.sample_rate_hz)
    starts = ~T.consecutive(d.recording[order], d.start_s[order], d.fmt.hop_s)
    train = np.flatnonzero(d.subject[:] < 3)
    prior = T.fit_prior(d.y[train], d.recording[train], d.start_s[train], d.fmt.hop_s)
    return q, starts, prior.with_params(5, 0.25), 0.1


def test_c_tracker_is_bit_exact_with_python_on_real_sequences(real_sequences) -> None:
    from ppgedge.firmware.tracker_run import run_host

    q, starts, prior, scale = real_sequences
    starts = starts.copy()
    starts[len(q) // 2] = True  # and a gap in the middle of a recording
    # without and with the re-acquire move and the label prior
    for jump, tau in ((None, None), (2.0, None), (2.0, 1.0)):
        p = prior.with_params(prior.half_width, prior.weight, jump, tau)
        idx, margin = T.filter_sequence(
            q, p.int_costs(scale), starts, p.int_jump(scale), p.int_label_offsets(scale)
        )
        c = run_host(p, scale, q, starts)
        assert np.array_equal(c.bpm, idx + 30) and np.array_equal(c.margin, margin), jump
        assert c.state_bytes <= 1024
        assert len(np.unique(idx)) > 5  # the sequences really move


@pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="no Arm toolchain or QEMU",
)
def test_c_tracker_on_cortex_m4_in_qemu_is_bit_exact(real_sequences) -> None:
    from ppgedge.firmware.tracker_run import run_qemu

    q, starts, prior, scale = real_sequences
    q, starts = q[:120], starts[:120]
    # with the re-acquire move and the label prior
    prior = prior.with_params(prior.half_width, prior.weight, 2.0, 1.0)
    idx, margin = T.filter_sequence(
        q, prior.int_costs(scale), starts, prior.int_jump(scale), prior.int_label_offsets(scale)
    )
    c = run_qemu(prior, scale, q, starts)
    assert np.array_equal(c.bpm, idx + 30) and np.array_equal(c.margin, margin)
    assert c.instructions is not None and (c.instructions > 0).all()


def test_c_tracker_resets_on_a_shape_mismatch(tmp_path) -> None:
    """Fed logits of another model, the C tracker returns BAD_INPUT and forgets its state."""
    from ppgedge.export.tracker_c import render_tracker

    prior = T.TransitionPrior((1, 3, 1), half_width=1)
    for name, text in render_tracker("m", prior, 0.1, "m").items():
        (tmp_path / name).write_text(text)
    (tmp_path / "t.c").write_text(
        '#include "m_tracker.h"\n#include <string.h>\n'
        "int main(void) { m_tracker_t t; int8_t x[180]; int32_t g;\n"
        "  memset(x, 0, sizeof x); x[50] = 100; m_tracker_reset(&t);\n"
        "  if (m_tracker_update(&t, x, 180, &g) != 80) return 1;\n"
        "  if (m_tracker_update(&t, x, 179, &g) != M_TRACKER_BAD_INPUT) return 2;\n"
        "  if (t.started) return 3;\n"
        "  x[50] = 0; x[150] = 100;\n"
        "  return m_tracker_update(&t, x, 180, &g) == 180 ? 0 : 4; }\n"
    )
    exe = tmp_path / "t"
    cc = shutil.which("cc") or shutil.which("gcc")
    flags = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
    srcs = [str(tmp_path / "m_tracker.c"), str(tmp_path / "t.c")]
    subprocess.run([cc, *flags, f"-I{tmp_path}", *srcs, "-o", str(exe)], check=True)
    assert subprocess.run([str(exe)]).returncode == 0


def test_training_fits_the_tracker_and_eval_scores_it_beside_the_decoder(
    tiny_checkpoint, tiny_dataset_path
) -> None:
    """The trainer stores a tracker chosen on validation; eval scores it on the test subjects
    next to the per-window decoder and says how many sequences it tracked."""
    from ppgedge.evaluate.report import evaluate_model
    from ppgedge.evaluate.tracking import (
        GRID_HALF_WIDTH,
        GRID_JUMP,
        GRID_LABEL_POWER,
        GRID_WEIGHT,
        choose_decoder,
    )
    from ppgedge.models.checkpoint import load_checkpoint
    from ppgedge.train.trainer import label_stretch, training_config_of

    ckpt = load_checkpoint(tiny_checkpoint)
    tr = ckpt.tracker
    prior = T.TransitionPrior.from_dict(tr["prior"])
    # the label prior knows the time stretch the network was trained with
    assert prior.label_stretch is not None
    assert prior.label_stretch == label_stretch(training_config_of(ckpt))
    assert prior.half_width in GRID_HALF_WIDTH and prior.weight in GRID_WEIGHT
    assert prior.jump in GRID_JUMP and prior.label_power in GRID_LABEL_POWER
    assert prior.label_counts is not None and sum(prior.label_counts) > 0
    grid = len(GRID_HALF_WIDTH) * len(GRID_WEIGHT) * len(GRID_JUMP) * len(GRID_LABEL_POWER)
    assert tr["configurations"] == grid
    assert min(tr["val_mae_grid"].values()) == tr["val_mae_by_decoder"]["tracked"]
    assert set(tr["val_mae_by_decoder"]) == {"argmax", "smoothed", "expectation", "tracked"}
    assert tr["decoder"] == choose_decoder(tr["val_mae_by_decoder"], tr["decoder_margin"])
    result = evaluate_model(tiny_checkpoint, tiny_dataset_path, baseline=False, device="cpu")
    assert list(result["models"]) == ["resnet_micro", "resnet_micro (tracked)"]
    assert result["tracking"]["sequences"] >= 1 and result["tracking"]["arithmetic"] == "float"


def test_decoder_choice_keeps_the_tracker_unless_a_window_decoder_is_clearly_better() -> None:
    from ppgedge.evaluate.tracking import choose_decoder

    maes = {"argmax": 2.0, "smoothed": 1.9, "expectation": 1.95, "tracked": 2.05}
    assert choose_decoder(maes, 0.0) == "smoothed"  # a plain minimum
    assert choose_decoder(maes, 0.10) == "tracked"  # 1.9 is not below 0.9 x 2.05
    assert choose_decoder({**maes, "smoothed": 1.8}, 0.10) == "smoothed"
    assert choose_decoder({"argmax": 1.0, "expectation": 1.0}, 0.10) == "argmax"  # no tracker
    with pytest.raises(PpgedgeError, match="margin"):
        choose_decoder(maes, 1.0)
