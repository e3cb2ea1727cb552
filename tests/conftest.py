"""Shared fixtures: one tiny synthetic dataset and one tiny trained checkpoint per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ppgedge.data.format import DataFormat, Dataset, write_dataset
from ppgedge.data.splits import holdout
from ppgedge.data.synth import synthesize
from ppgedge.train.trainer import TrainConfig, train

torch.set_num_threads(2)

SHARED = Path(__file__).resolve().parents[2] / "shared"
SPC_DIR = SHARED / "data" / "ieee-spc2015"


@pytest.fixture(scope="session")
def tiny_dataset_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "tiny.ppgds"
    write_dataset(synthesize(n_subjects=5, minutes_per_subject=3.0, seed=7, fmt=DataFormat()), path)
    return path


@pytest.fixture(scope="session")
def tiny_dataset(tiny_dataset_path: Path) -> Dataset:
    return Dataset(tiny_dataset_path)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: Dataset) -> Path:
    out = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    split = holdout(tiny_dataset.subjects, seed=0)
    train(
        tiny_dataset, split, out, TrainConfig(arch="resnet_micro", epochs=2, seed=0), device="cpu"
    )
    return out
