"""Training, checkpoints, resume and evaluation on a tiny synthetic dataset."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from ppgedge.data.format import Dataset
from ppgedge.data.splits import holdout
from ppgedge.errors import PpgedgeError
from ppgedge.evaluate.report import evaluate_model
from ppgedge.models.checkpoint import load_checkpoint, save_checkpoint
from ppgedge.train.trainer import EpochReport, TrainConfig, TrainingObserver, train


def test_checkpoint_round_trip(tiny_checkpoint: Path, tmp_path: Path) -> None:
    ckpt = load_checkpoint(tiny_checkpoint)
    assert ckpt.arch == "resnet_micro"
    assert ckpt.data_format.channels == ("ppg", "acc_x", "acc_y", "acc_z")
    assert ckpt.data_format.sample_rate_hz == 32.0
    assert ckpt.decode in ("argmax", "expectation")
    assert {"val_mae", "parameters", "macs"} <= set(ckpt.metrics)
    assert ckpt.training["split"]["test"]
    copy = tmp_path / "copy.pt"
    save_checkpoint(ckpt, copy)
    again = load_checkpoint(copy)
    x = torch.randn(2, 4, 256)
    torch.testing.assert_close(ckpt.build()(x), again.build()(x))
    assert again.to_dict()["lineage"] == ckpt.to_dict()["lineage"]


class _Boom:
    def __reduce__(self):
        return (os.system, (f"touch {_Boom.marker}",))


def test_checkpoint_that_runs_code_is_refused(tmp_path: Path) -> None:
    _Boom.marker = str(tmp_path / "pwned")
    evil = tmp_path / "evil.pt"
    torch.save({"schema": "ppgedge.checkpoint/1", "payload": _Boom()}, evil)
    with pytest.raises(PpgedgeError, match="not a loadable ppgedge checkpoint"):
        load_checkpoint(evil)
    assert not (tmp_path / "pwned").exists()
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, plain)
    with pytest.raises(PpgedgeError, match="not a ppgedge checkpoint"):
        load_checkpoint(plain)
    (tmp_path / "garbage.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(PpgedgeError):
        load_checkpoint(tmp_path / "garbage.pt")
    (tmp_path / "pickle.pt").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(PpgedgeError):
        load_checkpoint(tmp_path / "pickle.pt")


class _InterruptAfter(TrainingObserver):
    def __init__(self, epochs: int) -> None:
        self.epochs, self.first_epoch = epochs, None

    def start(self, total_epochs: int, batches_per_epoch: int, first_epoch: int) -> None:
        self.first_epoch = first_epoch

    def epoch(self, report: EpochReport) -> None:
        if report.epoch == self.epochs:
            raise KeyboardInterrupt


def test_interrupted_training_resumes_to_the_same_model(
    tiny_dataset: Dataset, tmp_path: Path
) -> None:
    split = holdout(tiny_dataset.subjects, seed=0)
    cfg = TrainConfig(arch="resnet_micro", epochs=3, patience=10, seed=3)
    straight = train(tiny_dataset, split, tmp_path / "straight.pt", cfg, device="cpu")

    out = tmp_path / "interrupted.pt"
    with pytest.raises(KeyboardInterrupt):
        train(tiny_dataset, split, out, cfg, device="cpu", observer=_InterruptAfter(2))
    assert not out.exists(), "no final checkpoint may exist after an interruption"
    assert (tmp_path / "interrupted.pt.resume").exists()
    observer = _InterruptAfter(-1)
    resumed = train(tiny_dataset, split, out, cfg, device="cpu", observer=observer)
    assert observer.first_epoch == 2
    assert not (tmp_path / "interrupted.pt.resume").exists()
    for key, value in straight.state_dict.items():
        torch.testing.assert_close(resumed.state_dict[key], value, msg=key)
    assert [h["epoch"] for h in resumed.training["history"]] == [1, 2, 3]


def test_changed_config_does_not_resume(tiny_dataset: Dataset, tmp_path: Path) -> None:
    split = holdout(tiny_dataset.subjects, seed=0)
    out = tmp_path / "m.pt"
    with pytest.raises(KeyboardInterrupt):
        train(
            tiny_dataset,
            split,
            out,
            TrainConfig(arch="resnet_micro", epochs=3, seed=1),
            device="cpu",
            observer=_InterruptAfter(1),
        )
    observer = _InterruptAfter(-1)
    train(
        tiny_dataset,
        split,
        out,
        TrainConfig(arch="resnet_micro", epochs=2, seed=2),
        device="cpu",
        observer=observer,
    )
    assert observer.first_epoch == 0


def test_fine_tune_records_parent(
    tiny_dataset: Dataset, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    split = holdout(tiny_dataset.subjects, seed=1)
    child = train(
        tiny_dataset,
        split,
        tmp_path / "child.pt",
        TrainConfig(arch="resnet_micro", epochs=1),
        init_from=tiny_checkpoint,
        device="cpu",
    )
    assert child.parent["path"] == str(tiny_checkpoint)
    assert len(child.parent["sha256"]) == 64
    assert child.training["method"] == "fine-tune"
    with pytest.raises(PpgedgeError, match="same architecture"):
        train(
            tiny_dataset,
            split,
            tmp_path / "bad.pt",
            TrainConfig(arch="resnet_tiny", epochs=1),
            init_from=tiny_checkpoint,
            device="cpu",
        )


def test_ppg_only_model(tiny_dataset: Dataset, tmp_path: Path) -> None:
    split = holdout(tiny_dataset.subjects, seed=0)
    ckpt = train(
        tiny_dataset,
        split,
        tmp_path / "ppg.pt",
        TrainConfig(arch="mlp_small", channels="ppg", epochs=1),
        device="cpu",
    )
    assert ckpt.data_format.channels == ("ppg",)
    assert ckpt.build()(torch.randn(2, 1, 256)).shape == (2, 180)


def test_eval_uses_held_out_subjects(tiny_checkpoint: Path, tiny_dataset_path: Path) -> None:
    result = evaluate_model(tiny_checkpoint, tiny_dataset_path)
    ckpt = load_checkpoint(tiny_checkpoint)
    test_subjects = set(ckpt.training["split"]["test"])
    model_report = result["models"]["resnet_micro"]
    assert set(model_report["per_subject"]) == test_subjects
    spectral = result["models"]["spectral baseline"]
    assert spectral["overall"]["n"] == model_report["overall"]["n"] == result["n_windows"]
    per_act = model_report["per_activity"]
    assert sum(v["n"] for v in per_act.values()) == result["n_windows"]
    for m in (model_report["overall"], spectral["overall"]):
        assert 0 <= m["mae"] <= m["rmse"] and 0 <= m["within5"] <= 1
    everything = evaluate_model(tiny_checkpoint, tiny_dataset_path, part="all")
    assert everything["n_windows"] == len(Dataset(tiny_dataset_path))


def test_spectral_baseline_finds_a_clean_sinusoid() -> None:
    from ppgedge.evaluate.spectral import spectral_bpm

    t = np.arange(256) / 32.0
    ppg = np.stack([np.sin(2 * np.pi * bpm / 60 * t) for bpm in (48.0, 75.0, 150.0)])
    assert np.allclose(spectral_bpm(ppg, 32.0), [48.0, 75.0, 150.0], atol=1.0)
