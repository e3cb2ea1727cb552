"""Shared fixtures: one tiny synthetic dataset and one tiny trained checkpoint per session."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from firmware_helpers import need_tools

from ppgedge.data.format import DataFormat, Dataset, write_dataset
from ppgedge.data.splits import holdout
from ppgedge.data.synth import synthesize
from ppgedge.threads import limit_threads
from ppgedge.train.trainer import TrainConfig, train

# pytest-xdist runs two workers on CI's two cores: one thread each for PyTorch and BLAS, in the
# worker and in every `ppgedge` subprocess it starts (the variables are inherited), or two
# workers' children spin four threads on two cores
if os.environ.get("PYTEST_XDIST_WORKER"):
    limit_threads(1)
else:
    torch.set_num_threads(2)

SHARED = Path(__file__).resolve().parents[2] / "shared"
SPC_DIR = SHARED / "data" / "ieee-spc2015"


# Files that share one expensive session fixture run on one xdist worker, as one work unit:
# split between the two workers, test_aot.py waited for test_measure.py's runtime build on the
# file lock and then measured the same model a second time.
ONE_WORKER = {
    "test_measure.py": "firmware",
    "test_aot.py": "firmware",
    "test_pipeline.py": "pipeline",  # tiny_run: test_determinism.py compares against its run
    "test_determinism.py": "pipeline",
}


# The files that took longest (seconds per file, `pytest --durations=0`, 2 workers on 2 cores),
# sent to the workers first: a long file started last leaves the other core idle at the end.
# The rest keep their collection order (pyproject: --no-loadscope-reorder).
LONG_FIRST = (
    "test_aot.py",  # with test_measure.py: ~320 s
    "test_measure.py",
    "test_export.py",  # ~300 s
    "test_door.py",  # ~150 s
    "test_cli.py",
    "test_interrupt.py",
    "test_determinism.py",
    "test_pipeline.py",
    "test_bundle.py",
    "test_integer_reference.py",
    "test_sweep_ray.py",  # ~85 s
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: k for k, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: keeps the rest


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadfile`` (pyproject's addopts) with ONE_WORKER's files as one unit."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class _SharedFixtures(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = super()._split_scope(nodeid)
            return ONE_WORKER.get(Path(file).name, file)

    return _SharedFixtures(config, log)


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


@dataclass
class TinyPipeline:
    cfg: dict
    result: object
    recorder: object
    first: Path  # a copy of the run folder as the run first wrote it
    threads: int  # the PyTorch thread count it ran with


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> TinyPipeline:
    """``run_pipeline`` on the tiny config in this process. test_pipeline.py reruns and changes
    its folder; test_determinism.py compares a run in a fresh process against the copy."""
    from pipeline_helpers import TINY, Recorder

    from ppgedge.pipeline import load_run_config, run_pipeline

    folder = tmp_path_factory.mktemp("pipeline")
    cfg_path = folder / "ppgedge.toml"
    cfg_path.write_text(TINY)
    cfg = load_run_config(cfg_path)
    rec = Recorder()
    result = run_pipeline(cfg, observer=rec)
    first = tmp_path_factory.mktemp("pipeline-first") / "run"
    shutil.copytree(result.out, first, symlinks=True)
    return TinyPipeline(cfg, result, rec, first, torch.get_num_threads())


@pytest.fixture(scope="session")
def tiny_run(tiny_pipeline: TinyPipeline) -> tuple:
    return tiny_pipeline.cfg, tiny_pipeline.result, tiny_pipeline.recorder
