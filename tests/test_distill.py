"""Distillation end to end on a tiny dataset: every method, cross-modal, progressive, errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ppgedge.data.format import DataFormat, Dataset, write_dataset
from ppgedge.data.splits import holdout
from ppgedge.data.synth import synthesize
from ppgedge.distill.run import distill
from ppgedge.errors import PpgedgeError
from ppgedge.models.checkpoint import Checkpoint, load_checkpoint
from ppgedge.train.trainer import TrainConfig, TrainingObserver

CFG = TrainConfig(epochs=1, batch_size=64)


class _Starts(TrainingObserver):
    """Counts the trainings that start."""

    def __init__(self) -> None:
        self.count = 0

    def start(self, total_epochs: int, batches_per_epoch: int, first_epoch: int) -> None:
        self.count += 1


@pytest.mark.parametrize("method", ["hard", "soft", "dkd", "feature"])
def test_each_method_makes_a_student_with_lineage(
    method: str, tiny_dataset: Dataset, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    split = holdout(tiny_dataset.subjects, seed=0)
    out = tmp_path / f"{method}.pt"
    ckpt = distill(
        tiny_checkpoint,
        tiny_dataset,
        split,
        "resnet_micro",
        out,
        CFG,
        method=method,
        cache_dir=tmp_path / "cache",
        device="cpu",
    )
    again = load_checkpoint(out)
    assert again.arch == "resnet_micro"
    assert again.training["method"] == f"distill:{method}"
    assert again.parent["path"] == str(tiny_checkpoint)
    assert again.lineage[-1]["teacher"]["sha256"] == ckpt.parent["sha256"]
    assert again.training["objective"]["hparams"]


def test_cross_modal_student_sees_only_ppg(
    tiny_dataset: Dataset, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    split = holdout(tiny_dataset.subjects, seed=0)
    ckpt = distill(
        tiny_checkpoint,
        tiny_dataset,
        split,
        "mlp_small",
        tmp_path / "ppg.pt",
        TrainConfig(epochs=1, channels="ppg"),
        method="soft",
        cache_dir=tmp_path / "cache",
        device="cpu",
    )
    assert ckpt.data_format.channels == ("ppg",)
    assert ckpt.training["objective"]["teacher_channels"] == ["ppg", "acc_x", "acc_y", "acc_z"]
    # augmented inputs run the teacher online on the same (augmented) batch
    ckpt = distill(
        tiny_checkpoint,
        tiny_dataset,
        split,
        "resnet_micro",
        tmp_path / "acc.pt",
        TrainConfig(epochs=1, channels="acc", augment=True),
        method="dkd",
        cache_dir=tmp_path / "cache",
        device="cpu",
    )
    assert ckpt.data_format.channels == ("acc_x", "acc_y", "acc_z")


def test_progressive_goes_through_an_assistant(
    tiny_dataset: Dataset, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    split = holdout(tiny_dataset.subjects, seed=0)
    out = tmp_path / "student.pt"

    def run(cfg: TrainConfig) -> tuple[Checkpoint, int]:
        """The student and how many trainings started (the assistant's, then the student's)."""
        seen = _Starts()
        kw = {"assistant": "resnet_tiny", "cache_dir": tmp_path / "cache", "device": "cpu"}
        args = (tiny_checkpoint, tiny_dataset, split, "resnet_micro", out, cfg)
        return distill(*args, method="progressive", observer=seen, **kw), seen.count

    ckpt, trained = run(CFG)
    assert trained == 2
    assistant = load_checkpoint(tmp_path / "student.assistant.pt")
    assert assistant.arch == "resnet_tiny"
    assert assistant.parent["path"] == str(tiny_checkpoint)
    assert ckpt.parent["path"] == str(tmp_path / "student.assistant.pt")
    assert ckpt.training["method"].startswith("distill:progressive")
    # the same configuration again reuses the finished assistant; another trains it again
    assert run(CFG)[1] == 1
    assert run(replace(CFG, seed=CFG.seed + 1))[1] == 2


def test_mismatched_teacher_and_missing_channels_are_user_errors(
    tiny_dataset: Dataset, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    split = holdout(tiny_dataset.subjects, seed=0)
    other = tmp_path / "25hz.ppgds"
    write_dataset(synthesize(3, 1.0, seed=1, fmt=DataFormat(sample_rate_hz=25.0)), other)
    with pytest.raises(PpgedgeError, match="Hz"):
        distill(
            tiny_checkpoint,
            Dataset(other),
            holdout(Dataset(other).subjects),
            "resnet_micro",
            tmp_path / "x.pt",
            CFG,
            cache_dir=tmp_path / "cache",
            device="cpu",
        )
    ppg_only = tmp_path / "ppg.ppgds"
    write_dataset(synthesize(3, 1.0, seed=1, fmt=DataFormat(channels=("ppg",))), ppg_only)
    with pytest.raises(PpgedgeError):
        distill(
            tiny_checkpoint,
            Dataset(ppg_only),
            holdout(Dataset(ppg_only).subjects),
            "resnet_micro",
            tmp_path / "y.pt",
            CFG,
            cache_dir=tmp_path / "cache",
            device="cpu",
        )
    with pytest.raises(PpgedgeError, match="unknown method"):
        distill(
            tiny_checkpoint,
            tiny_dataset,
            split,
            "resnet_micro",
            tmp_path / "z.pt",
            CFG,
            method="telepathy",
            device="cpu",
        )
    assert not any(tmp_path.glob("*.pt"))
