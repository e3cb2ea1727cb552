"""Teachers in every format give the checkpoint's logits; the logits cache hits and misses right."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from ppgedge.data.format import DataFormat, Dataset, write_dataset
from ppgedge.data.loader import WindowSource
from ppgedge.data.synth import synthesize
from ppgedge.distill.cache import default_cache_dir, teacher_logits
from ppgedge.distill.teachers import (
    ONNX_METADATA_KEY,
    TORCHSCRIPT_EXTRA_FILE,
    check_teacher_matches,
    export_module_onnx,
    export_onnx_teacher,
    export_torchscript_teacher,
    load_teacher,
    quiet_torchscript,
)
from ppgedge.errors import PpgedgeError
from ppgedge.models import create_model
from ppgedge.models.checkpoint import checkpoint_from_model, load_checkpoint, save_checkpoint


def _windows(dataset: Dataset, n: int = 37) -> torch.Tensor:
    source = WindowSource(dataset, np.arange(n), dataset.fmt.channels)
    return torch.from_numpy(source.windows(np.arange(n)))


def _random_checkpoint(path: Path, seed: int, fmt: DataFormat | None = None) -> Path:
    """An untrained resnet_micro with non-trivial batch-norm statistics."""
    fmt = fmt or DataFormat()
    torch.manual_seed(seed)
    model = create_model("resnet_micro", in_channels=len(fmt.channels))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return save_checkpoint(checkpoint_from_model(model, fmt), path)


@pytest.fixture(scope="module")
def onnx_teacher_path(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx_teacher(tiny_checkpoint, tmp_path_factory.mktemp("onnx") / "t.onnx")


@pytest.fixture(scope="module")
def second_dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    path = tmp_path_factory.mktemp("data2") / "other.ppgds"
    write_dataset(synthesize(n_subjects=2, minutes_per_subject=1.0, seed=11), path)
    return Dataset(path)


def test_onnx_teacher_matches_pytorch(
    onnx_teacher_path: Path, tiny_checkpoint: Path, tiny_dataset: Dataset
) -> None:
    ckpt = load_checkpoint(tiny_checkpoint)
    teacher = load_teacher(onnx_teacher_path)  # data format read from metadata_props
    assert teacher.kind == "onnx" and teacher.data_format == ckpt.data_format
    assert not teacher.supports_features and not teacher.outputs_probabilities
    x = _windows(tiny_dataset)
    with torch.no_grad():
        want = ckpt.build()(x)
    for batch in (x, x[:1]):  # dynamic batch axis
        got = teacher.logits(batch)
        assert got.dtype == torch.float32 and got.shape == (len(batch), 180)
        assert (got - want[: len(batch)]).abs().max().item() < 1e-4
    rec = teacher.record()
    assert rec["kind"] == "onnx" and len(rec["sha256"]) == 64
    assert rec["data_format"] == ckpt.data_format.to_dict()


def test_onnx_teacher_with_4d_input(tiny_checkpoint: Path, tmp_path: Path) -> None:
    ckpt = load_checkpoint(tiny_checkpoint)
    model, fmt = ckpt.build(), ckpt.data_format
    example = torch.zeros(2, len(fmt.channels), 1, fmt.window_samples)
    teacher = load_teacher(export_module_onnx(model, fmt, tmp_path / "4d.onnx", example=example))
    x = torch.randn(3, len(fmt.channels), fmt.window_samples)
    assert (teacher.logits(x) - model(x).detach()).abs().max().item() < 1e-4


def test_torchscript_teachers_match_pytorch(
    tiny_checkpoint: Path, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    ckpt = load_checkpoint(tiny_checkpoint)
    model = ckpt.build()
    x = _windows(tiny_dataset)
    with torch.no_grad():
        want = model(x)
    # a traced archive saved as .pt: told apart from a ppgedge checkpoint by its content
    extra = {TORCHSCRIPT_EXTRA_FILE: json.dumps(ckpt.data_format.to_dict())}
    with quiet_torchscript():
        torch.jit.save(torch.jit.trace(model, x[:2]), str(tmp_path / "traced.pt"), extra)
    scripted = export_torchscript_teacher(tiny_checkpoint, tmp_path / "scripted.ts")
    for path in (tmp_path / "traced.pt", scripted):
        teacher = load_teacher(path)
        assert teacher.kind == "torchscript" and teacher.data_format == ckpt.data_format
        assert (teacher.logits(x) - want).abs().max().item() < 1e-4


def test_checkpoint_teacher_features(tiny_checkpoint: Path, tiny_dataset: Dataset) -> None:
    teacher = load_teacher(tiny_checkpoint)
    assert teacher.kind == "checkpoint" and teacher.supports_features
    assert teacher.record()["arch"] == "resnet_micro"
    x = _windows(tiny_dataset, 8)
    feats, logits = teacher.features(x)
    assert len(feats) >= 2 and all(f.shape[0] == 8 and not f.requires_grad for f in feats)
    torch.testing.assert_close(logits, teacher.logits(x))


def test_cache_hits_and_misses(
    tiny_checkpoint: Path, tiny_dataset: Dataset, second_dataset: Dataset, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    teacher = load_teacher(tiny_checkpoint)

    first = teacher_logits(teacher, tiny_dataset, cache_dir=cache, batch_size=64)
    assert not first.hit and first.logits.shape == (len(tiny_dataset), 180)
    assert first.logits.dtype == np.float32 and not first.logits.flags.writeable
    x = _windows(tiny_dataset, 70)  # spans two batches of 64
    np.testing.assert_allclose(first.logits[:70], teacher.logits(x).numpy(), atol=1e-5)

    again = teacher_logits(teacher, tiny_dataset, cache_dir=cache)
    assert again.hit and again.path == first.path
    np.testing.assert_array_equal(again.logits, first.logits)
    assert len(list(cache.glob("*.npy"))) == 1

    other = load_teacher(_random_checkpoint(tmp_path / "other.pt", seed=3))
    assert not teacher_logits(other, tiny_dataset, cache_dir=cache).hit
    assert len(list(cache.glob("*.npy"))) == 2

    res = teacher_logits(teacher, second_dataset, cache_dir=cache)
    assert not res.hit and res.logits.shape == (len(second_dataset), 180)
    assert len(list(cache.glob("*.npy"))) == 3
    assert teacher_logits(teacher, second_dataset, cache_dir=cache).hit


def test_corrupt_cache_is_recomputed(
    tiny_checkpoint: Path, second_dataset: Dataset, tmp_path: Path
) -> None:
    teacher = load_teacher(tiny_checkpoint)
    first = teacher_logits(teacher, second_dataset, cache_dir=tmp_path)
    good, path = np.array(first.logits), first.path
    del first  # drop the memory map before the file is overwritten in place
    data = path.read_bytes()
    for bad in (data[: len(data) // 2], b"garbage"):
        path.write_bytes(bad)
        res = teacher_logits(teacher, second_dataset, cache_dir=tmp_path)
        assert not res.hit
        np.testing.assert_array_equal(res.logits, good)
    assert len(list(tmp_path.iterdir())) == 1  # no temporary files left behind


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PPGEDGE_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "teacher-logits"
    monkeypatch.delenv("PPGEDGE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "ppgedge" / "teacher-logits"


def test_format_mismatch_is_refused(
    tmp_path: Path, tiny_dataset: Dataset, onnx_teacher_path: Path
) -> None:
    fast = load_teacher(_random_checkpoint(tmp_path / "r.pt", 0, DataFormat(sample_rate_hz=25.0)))
    with pytest.raises(PpgedgeError, match="25 Hz"):
        check_teacher_matches(fast, tiny_dataset)
    with pytest.raises(PpgedgeError, match="re-import"):
        teacher_logits(fast, tiny_dataset, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()

    ppg_data = tmp_path / "ppg.ppgds"
    write_dataset(
        synthesize(
            n_subjects=1, minutes_per_subject=0.5, seed=1, fmt=DataFormat(channels=("ppg",))
        ),
        ppg_data,
    )
    all_channels = load_teacher(_random_checkpoint(tmp_path / "c.pt", 0))
    with pytest.raises(PpgedgeError, match="lacks acc_x"):
        check_teacher_matches(all_channels, Dataset(ppg_data))

    # a foreign model without metadata: the given format must fit its static input shape
    model = onnx.load(str(onnx_teacher_path))
    assert [p.key for p in model.metadata_props] == [ONNX_METADATA_KEY]
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    with pytest.raises(PpgedgeError, match="no ppgedge data format"):
        load_teacher(bare)
    with pytest.raises(PpgedgeError, match=r"model input is \(B, 4, 256\)"):
        load_teacher(bare, DataFormat(channels=("ppg",)))
    assert load_teacher(bare, tiny_dataset.fmt).data_format == tiny_dataset.fmt


def test_wrong_output_size_is_refused(tmp_path: Path) -> None:
    fmt = DataFormat()
    linear = nn.Sequential(nn.Flatten(), nn.Linear(4 * 256, 10))
    path = export_module_onnx(linear, fmt, tmp_path / "ten.onnx")
    with pytest.raises(PpgedgeError, match=r"outputs 10 values.*180 \(30\.\.209 BPM"):
        load_teacher(path)
    with quiet_torchscript():
        torch.jit.save(torch.jit.trace(linear, torch.zeros(1, 4, 256)), str(tmp_path / "ten.ts"))
    with pytest.raises(PpgedgeError, match="180"):
        load_teacher(tmp_path / "ten.ts", fmt)


def test_softmax_output_is_turned_into_logits(tmp_path: Path) -> None:
    fmt = DataFormat(channels=("ppg",))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(256, 180))
    model = nn.Sequential(net, nn.Softmax(dim=1))
    teacher = load_teacher(export_module_onnx(model, fmt, tmp_path / "p.onnx"))
    assert teacher.outputs_probabilities
    x = torch.randn(3, 1, 256)
    got = teacher.logits(x)
    want = torch.log_softmax(net(x), dim=1).detach()
    assert (got - want).abs().max().item() < 1e-4


def test_corrupt_files_are_refused(tmp_path: Path, onnx_teacher_path: Path) -> None:
    whole = onnx_teacher_path.read_bytes()
    cases = {
        "junk.onnx": b"\x00\x01 not a model",
        "half.onnx": whole[: len(whole) // 2],
        "junk.pt": b"not a checkpoint",
        "junk.ts": b"PK\x03\x04 truncated zip",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(PpgedgeError) as info:
            load_teacher(tmp_path / name, DataFormat())
        assert "\n" not in str(info.value) and name in str(info.value)
    with pytest.raises(PpgedgeError, match="no such"):
        load_teacher(tmp_path / "missing.onnx")


def test_features_need_a_checkpoint_teacher(onnx_teacher_path: Path) -> None:
    teacher = load_teacher(onnx_teacher_path)
    with pytest.raises(PpgedgeError, match="forward_features"):
        teacher.features(torch.zeros(1, 4, 256))


def test_keras_without_tensorflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import fails even if installed
    (tmp_path / "m.keras").write_bytes(b"")
    with pytest.raises(PpgedgeError, match=r"pip install 'ppgedge\[keras\]'"):
        load_teacher(tmp_path / "m.keras", DataFormat())
