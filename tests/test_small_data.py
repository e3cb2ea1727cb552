"""Small-data defaults of the chain: epochs scaled to the data, representative validation
subjects, distilled-or-scratch student; and the classical spectral tracker baseline."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ppgedge.data.format import Dataset
from ppgedge.data.splits import holdout, representative_val
from ppgedge.distill.choose import keep_better, scratch_path
from ppgedge.distill.run import distill
from ppgedge.evaluate.spectral import spectral_bpm
from ppgedge.evaluate.spectral_tracker import TrackerParams, spectra, spectral_track, track_spectra
from ppgedge.models.checkpoint import load_checkpoint
from ppgedge.train.schedule import MAX_SCALE, epoch_scale, scaled
from ppgedge.train.trainer import EpochReport, TrainConfig, TrainingObserver


def test_epochs_scale_with_the_training_windows() -> None:
    assert epoch_scale(3300) == 1.0  # the synthetic default: unchanged
    assert epoch_scale(1000) == pytest.approx(3.0)
    assert epoch_scale(10) == MAX_SCALE
    assert epoch_scale(1000, reference_windows=0) == 1.0  # off
    assert scaled(20, 2.9) == 58 and scaled(6, 1.0) == 6 and scaled(0, 3.0) == 0


def test_representative_validation_subjects_leave_the_outlier_in_training() -> None:
    rng = np.random.default_rng(0)
    labels = {f"s{i}": rng.normal(100, 5, 50) for i in range(6)}
    labels["hi"] = rng.normal(170, 3, 50)  # one subject with far higher heart rates
    pool = sorted(labels)
    for n in (1, 2):
        val = representative_val(pool, labels, n)
        assert len(val) == n and "hi" not in val
    split = holdout(pool + ["t"], test=["t"], labels={**labels, "t": labels["s0"]})
    assert "hi" in split.train and len(split.val) == 1 and "t" not in split.val
    # without labels the seeded draw is unchanged (named subjects still win)
    assert holdout(pool + ["t"], test=["t"]) == holdout(pool + ["t"], test=["t"], seed=0)
    assert holdout(pool, val=["hi"], labels=labels).val == ("hi",)


def test_distill_stage_keeps_the_better_student_and_records_both(
    tmp_path: Path, tiny_dataset: Dataset, tiny_checkpoint: Path
) -> None:
    out = tmp_path / "student.pt"
    shutil.copyfile(tiny_checkpoint, out)  # stands in for the distilled student
    distilled = load_checkpoint(out)
    split = holdout(tiny_dataset.subjects, seed=0)
    cfg = TrainConfig(arch="resnet_micro", epochs=1, seed=1)
    kept = keep_better(distilled, tiny_dataset, split, out, cfg, method="dkd", device="cpu")
    choice = kept.metrics["choice"]
    scores = choice["val_mae"]
    assert set(scores) == {"dkd", "scratch"} and choice["chosen_on"] == "validation subjects"
    assert choice["kept"] == min(scores, key=scores.get)
    assert kept.metrics["val_mae"] == pytest.approx(scores[choice["kept"]])
    other = load_checkpoint(scratch_path(out))  # the candidate not kept stays beside it
    loser = "scratch" if choice["kept"] == "dkd" else "dkd"
    assert other.metrics["val_mae"] == pytest.approx(scores[loser])


def _windows(hr_bpm: np.ndarray, cadence_bpm: float, rate: float = 32.0) -> np.ndarray:
    """PPG = weak pulse + strong motion artefact at the cadence; accelerometer = the cadence."""
    t = np.arange(256) / rate
    x = np.zeros((len(hr_bpm), 4, 256), np.float32)
    for i, hr in enumerate(hr_bpm):
        start = 2.0 * i
        x[i, 0] = np.sin(2 * np.pi * hr / 60 * (t + start)) + 2.0 * np.sin(
            2 * np.pi * cadence_bpm / 60 * (t + start)
        )
        x[i, 1] = np.sin(2 * np.pi * cadence_bpm / 60 * (t + start))
        x[i, 2:] = 0.01 * np.cos(t)
    return x


def test_spectral_tracker_follows_the_pulse_where_the_baseline_reports_the_cadence() -> None:
    hr = np.linspace(90, 110, 20)
    x = _windows(hr, cadence_bpm=150.0)
    assert np.abs(spectral_bpm(x[:, 0], 32.0) - 150.0).max() < 3  # baseline: the cadence
    axis, p, a, motion = spectra(x, 32.0, 0, [1, 2, 3])
    new = np.zeros(len(x), bool)
    new[0] = True
    track = track_spectra(axis, p, a, motion, new, TrackerParams(15.0, 1.0, 4.0, 0))
    assert np.abs(track - hr).mean() < 3
    off = track_spectra(axis, p, a, motion, new, TrackerParams(15.0, 0.0, 4.0, 0))
    assert np.abs(off - hr).mean() > 20  # without suppression it locks onto the cadence


def test_spectral_tracker_on_a_dataset_returns_the_input_order(tiny_dataset: Dataset) -> None:
    idx = np.arange(len(tiny_dataset))[:120]
    params = TrackerParams()
    bpm = spectral_track(tiny_dataset, idx, params)
    perm = np.random.default_rng(0).permutation(len(idx))
    assert np.allclose(spectral_track(tiny_dataset, idx[perm], params), bpm[perm])
    assert np.isfinite(bpm).all() and len(bpm) == len(idx)


class _Seen(TrainingObserver):
    """Records where each training started and whether its first epoch was a resumed one."""

    def __init__(self, stop_after_first_epoch: bool = False) -> None:
        self.starts: list[int] = []
        self.resumed: list[bool] = []
        self.stop = stop_after_first_epoch

    def start(self, total_epochs: int, batches_per_epoch: int, first_epoch: int) -> None:
        self.starts.append(first_epoch)

    def epoch(self, report: EpochReport) -> None:
        self.resumed.append(report.resumed)
        if self.stop:
            raise KeyboardInterrupt


def test_an_interrupted_scratch_training_does_not_train_the_distilled_student_again(
    tmp_path: Path, tiny_dataset: Dataset, tiny_checkpoint: Path
) -> None:
    """The distill stage with keep_better, interrupted in its second (from-scratch) training:
    the rerun takes the distilled student its first training finished (same configuration
    digest) and resumes the second from its resume file."""
    out = tmp_path / "student.pt"
    split = holdout(tiny_dataset.subjects, seed=0)
    cfg = TrainConfig(arch="resnet_micro", epochs=2, seed=3)
    args = (tiny_checkpoint, tiny_dataset, split, "resnet_micro", out, cfg)
    common = {"method": "dkd", "device": "cpu", "reuse_finished": True}
    distilled = distill(*args, cache_dir=tmp_path / "cache", **common)
    finished = out.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        keep_better(distilled, tiny_dataset, split, out, cfg, observer=_Seen(True), **common)
    assert scratch_path(out).with_name(scratch_path(out).name + ".resume").exists()

    seen = _Seen()
    again = distill(*args, cache_dir=tmp_path / "cache", observer=seen, **common)
    assert seen.starts == [] and out.read_bytes() == finished  # not trained, not rewritten
    kept = keep_better(again, tiny_dataset, split, out, cfg, observer=seen, **common)
    assert seen.starts == [1] and seen.resumed[0] is True  # the scratch student resumes
    assert kept.metrics["choice"]["kept"] in {"dkd", "scratch"}
    assert "digest" not in kept.training  # the annotated choice is no finished training

    # a finished checkpoint of another configuration is trained again, as without reuse
    (tmp_path / "other.pt").write_bytes(finished)
    other = _Seen()
    args = (*args[:-2], tmp_path / "other.pt", replace(cfg, seed=4))
    distill(*args, cache_dir=tmp_path / "cache", observer=other, **common)
    assert other.starts == [0]
