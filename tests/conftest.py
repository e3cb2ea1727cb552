"""Shared fixtures: one tiny synthetic dataset and one tiny trained checkpoint per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from firmware_helpers import need_tools

from ppgedge.data.format import DataFormat, Dataset, write_dataset
from ppgedge.data.splits import holdout
from ppgedge.data.synth import synthesize
from ppgedge.train.trainer import TrainConfig, train

# pytest-xdist runs two workers on CI's two cores: one torch thread each, or they oversubscribe
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)

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
    # the one-sided stretch: the model the quantisation and export tests' tolerances were set
    # on (2 epochs on 5 synthetic subjects is barely trained; the two-sided default's model
    # sits just under test_quantize's 80 % argmax agreement). The default is trained in
    # test_time_stretch.py and by every pipeline test.
    cfg = TrainConfig(arch="resnet_micro", epochs=2, seed=0, time_stretch="slower")
    train(tiny_dataset, split, out, cfg, device="cpu")
    return out


# Firmware tests (test_measure.py, test_aot.py) share one compiled TFLite Micro + CMSIS-NN
# runtime cache and one int8 model per session. Under pytest-xdist the cache is shared by the
# workers (the session folder above each worker's) and the first build holds a file lock, so
# the runtime is compiled once whichever worker gets there first.
@pytest.fixture(scope="session")
def fw_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_tools()
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    cache = root / "tflm-cache"
    cache.mkdir(exist_ok=True)
    return cache


@pytest.fixture(scope="session")
def resnet_bundle(tmp_path_factory, tiny_checkpoint: Path, tiny_dataset: Dataset) -> Path:
    """The session's resnet_micro as int8 .tflite with its bundle in tflm/ beside it."""
    from ppgedge.compress import quantize as Q
    from ppgedge.export import bundle as B

    out = tmp_path_factory.mktemp("measure-model")
    result = Q.ptq(tiny_checkpoint, tiny_dataset, out / "resnet.ptq.int8.pt", n_windows=64)
    tfl = Q.to_tflite(result.path, out / "resnet_micro.tflite")
    B.write_bundle(
        tfl,
        out / "tflm",
        name="resnet_micro",
        data_format=result.artifact.data_format,
        decode=result.artifact.decode,
    )
    return tfl


@pytest.fixture(scope="session")
def measured_kept(resnet_bundle: Path, tiny_dataset_path: Path, fw_cache: Path, tmp_path_factory):
    """``firmware.measure`` of the session model on a Cortex-M4 (6 windows) and the folder it
    kept (test_aot.py compares the AOT build against this very run)."""
    from firmware_helpers import TFLM_SRC

    from ppgedge.firmware import measure as M

    keep = tmp_path_factory.mktemp("measure-work")
    with FileLock(str(fw_cache) + ".lock"):  # the other worker waits, then finds it built
        report = M.measure(
            resnet_bundle,
            "cortex-m4",
            windows=6,
            data=tiny_dataset_path,
            tflm_src=TFLM_SRC,
            cache=fw_cache,
            jobs=2,
            keep=keep,
        )
    return report, keep


@pytest.fixture(scope="session")
def measured(measured_kept):
    return measured_kept[0]
