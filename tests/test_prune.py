"""Structured pruning: smaller models that run, residual and depthwise networks, every zoo
architecture, SIMD-friendly channel counts, budgets, distillation fine-tuning and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from ppgedge.compress.prune import (
    Budget,
    int8_flash_bytes,
    measure,
    parse_budget,
    prune,
)
from ppgedge.data.format import Dataset
from ppgedge.data.splits import holdout
from ppgedge.errors import PpgedgeError
from ppgedge.models import create_model, list_models
from ppgedge.models.bpm import N_CLASSES
from ppgedge.models.checkpoint import checkpoint_from_model, load_checkpoint, save_checkpoint
from ppgedge.models.layers import ConvBNAct
from ppgedge.train.trainer import TrainConfig, train

FAST = {"steps": 2, "finetune_epochs": 0, "final_epochs": 0, "device": "cpu"}


def _save_model(name: str, dataset: Dataset, path: Path, **kwargs) -> Path:
    """A freshly built zoo model wrapped as an ordinary checkpoint."""
    if name.startswith("mlp"):
        kwargs.setdefault("window_samples", dataset.fmt.window_samples)
    torch.manual_seed(0)
    model = create_model(name, in_channels=len(dataset.fmt.channels), **kwargs)
    save_checkpoint(checkpoint_from_model(model, dataset.fmt), path)
    return path


def _split(dataset: Dataset):
    return holdout(dataset.subjects, seed=0)


def _assert_rebuilds(path: Path, model: nn.Module, window: int) -> None:
    again = load_checkpoint(path).build()
    x = torch.randn(3, 4, window)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model.eval()(x))


def _head(model: nn.Module) -> nn.Linear:
    return [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == 180][-1]


def test_pruned_model_is_smaller_runs_and_is_an_ordinary_checkpoint(
    tiny_dataset: Dataset, tmp_path: Path
) -> None:
    src = _save_model("resnet_tiny", tiny_dataset, tmp_path / "tiny.pt")
    out = tmp_path / "pruned.pt"
    seen: list[dict] = []
    result = prune(
        src,
        tiny_dataset,
        _split(tiny_dataset),
        out,
        "50%",
        steps=2,
        finetune_epochs=1,
        final_epochs=1,
        device="cpu",
        on_step=seen.append,
    )
    assert not result.nothing_to_do
    assert [r["step"] for r in result.steps] == [0, 1, 2] and seen == result.steps
    before, after = result.steps[0], result.steps[-1]
    for key in ("parameters", "macs", "flash_bytes"):
        assert after[key] < before[key]
    assert after["parameters"] <= 0.5 * before["parameters"]
    assert all(r["val_mae"] is not None and r["seconds"] >= 0 for r in result.steps)

    ckpt = load_checkpoint(out)
    assert ckpt.arch == "resnet_tiny" and ckpt.layer_shapes
    model = ckpt.build()
    with torch.no_grad():
        assert model(torch.randn(5, 4, 256)).shape == (5, N_CLASSES)
    assert measure(model, 4, 256) == {k: after[k] for k in ("parameters", "macs", "flash_bytes")}
    assert ckpt.parent["path"] == str(src)
    assert ckpt.lineage[-1]["stage"] == "prune"
    assert ckpt.lineage[-1]["budget"]["kind"] == "params"
    assert ckpt.training["method"] == "fine-tune"
    assert ckpt.training["split"]["test"]  # later stages evaluate on the held-out subjects
    assert ckpt.metrics["val_mae"] == pytest.approx(after["val_mae"])
    _assert_rebuilds(out, result.checkpoint.build(), 256)


def test_residual_resnet_prunes_without_shape_errors(tiny_dataset: Dataset, tmp_path: Path) -> None:
    # depth 2: identity shortcuts inside each stage, 1x1 projections between stages
    src = _save_model("resnet1d", tiny_dataset, tmp_path / "r.pt", width=8, depth=2, stages=3)
    out = tmp_path / "r-pruned.pt"
    result = prune(src, tiny_dataset, _split(tiny_dataset), out, "50%", **FAST)
    assert result.steps[-1]["parameters"] <= 0.5 * result.steps[0]["parameters"]
    model = load_checkpoint(out).build()
    for block in model.stages:
        x = torch.randn(2, block.conv1[0].in_channels, 1, 32)
        assert block(x).shape[1] == block.conv2[0].out_channels  # the residual sum fits
    _assert_rebuilds(out, result.checkpoint.build(), 256)


@pytest.mark.parametrize("name", [e.name for e in list_models()])
def test_every_zoo_architecture_prunes_and_rebuilds(
    name: str, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    src = _save_model(name, tiny_dataset, tmp_path / f"{name}.pt")
    original = load_checkpoint(src).build()
    depthwise = [
        n for n, m in original.named_modules() if isinstance(m, nn.Conv2d) and m.groups > 1
    ]
    out = tmp_path / f"{name}-pruned.pt"
    # 70%: within reach of every architecture (resnet_micro bottoms out at 57% of its size)
    result = prune(src, tiny_dataset, _split(tiny_dataset), out, "70%", **FAST)
    assert result.steps[-1]["parameters"] <= 0.7 * result.steps[0]["parameters"]
    model = load_checkpoint(out).build()
    _assert_rebuilds(out, result.checkpoint.build(), tiny_dataset.fmt.window_samples)
    modules = dict(model.named_modules())
    for n in depthwise:  # still depthwise, so still DEPTHWISE_CONV_2D in TFLite
        m = modules[n]
        assert m.groups == m.in_channels == m.out_channels
    head = _head(model)
    assert head.out_features == N_CLASSES
    fixed = {n: m for n, m in modules.items() if getattr(m, "ppgedge_unprunable", False)}
    for n, m in fixed.items():  # a spectral head's pooling and DFT: the same transform
        torch.testing.assert_close(m.weight, dict(original.named_modules())[n].weight)
    for n, m in modules.items():
        if n in fixed or (isinstance(m, nn.Conv2d) and m.out_channels == 1):
            continue  # fixed transforms, and a spectral head's output (one class axis)
        if isinstance(m, nn.Conv2d):
            assert m.kernel_size[0] == 1
            assert m.out_channels % 4 == 0, n
        elif isinstance(m, nn.Linear) and m is not head:
            assert m.out_features % 4 == 0, n


def test_round_to_eight_keeps_multiples_of_eight(tiny_dataset: Dataset, tmp_path: Path) -> None:
    src = _save_model("resnet_small", tiny_dataset, tmp_path / "s.pt")
    out = tmp_path / "s8.pt"
    prune(src, tiny_dataset, _split(tiny_dataset), out, "40%", round_to=8, **FAST)
    model = load_checkpoint(out).build()
    widths = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(w % 8 == 0 for w in widths) and min(widths) >= 8
    assert any(w < 64 for w in widths)


def test_taylor_and_mac_budget(tiny_dataset: Dataset, tmp_path: Path) -> None:
    src = _save_model("dscnn_small", tiny_dataset, tmp_path / "d.pt")
    before = measure(load_checkpoint(src).build(), 4, 256)
    result = prune(
        src,
        tiny_dataset,
        _split(tiny_dataset),
        tmp_path / "d-pruned.pt",
        f"{before['macs'] * 0.6:.0f} macs",
        criterion="taylor",
        **FAST,
    )
    assert result.steps[-1]["macs"] <= 0.6 * before["macs"]
    assert load_checkpoint(tmp_path / "d-pruned.pt").lineage[-1]["criterion"] == "taylor"


def test_fine_tuning_with_a_teacher_distils(
    tiny_dataset: Dataset, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    split = _split(tiny_dataset)
    student = tmp_path / "student.pt"
    train(tiny_dataset, split, student, TrainConfig(arch="resnet_micro", epochs=1), device="cpu")
    out = tmp_path / "student-pruned.pt"
    prune(
        student,
        tiny_dataset,
        split,
        out,
        "80%",
        steps=2,
        finetune_epochs=1,
        final_epochs=1,
        teacher=tiny_checkpoint,
        method="dkd",
        cache_dir=tmp_path / "cache",
        device="cpu",
    )
    ckpt = load_checkpoint(out)
    assert ckpt.training["method"].startswith("distill")
    assert ckpt.lineage[-1]["teacher"]["path"] == str(tiny_checkpoint)
    assert ckpt.parent["path"] == str(student)
    assert ckpt.metrics["parameters"] <= 0.8 * load_checkpoint(student).metrics["parameters"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30000", Budget("params", 30000)),
        ("30k params", Budget("params", 30000)),
        ("30K", Budget("params", 30000)),
        ("50%", Budget("params", 0.5, relative=True)),
        ("50 % macs", Budget("macs", 0.5, relative=True)),
        ("2M macs", Budget("macs", 2e6)),
        ("2e6macs", Budget("macs", 2e6)),
        ("1.5 MMACs", Budget("macs", 1.5e6)),
        ("40kb", Budget("flash_kb", 40)),
        ("40KB flash", Budget("flash_kb", 40)),
        ("40 KiB", Budget("flash_kb", 40)),
        ("1 MB", Budget("flash_kb", 1024)),
        ("60% flash", Budget("flash_kb", 0.6, relative=True)),
    ],
)
def test_parse_budget(text: str, expected: Budget) -> None:
    assert parse_budget(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "30 apples", "-5", "0", "50%k", "40 kg"])
def test_bad_budgets_are_user_errors(text: str) -> None:
    with pytest.raises(PpgedgeError):
        parse_budget(text)


def test_int8_flash_bytes_counts_weights_and_folded_biases() -> None:
    model = nn.Sequential(ConvBNAct(4, 8, 5), nn.Flatten(), nn.Linear(8, 180))
    # conv 4*8*5 weights + 8 folded int32 biases; linear 8*180 weights + 180 int32 biases
    assert int8_flash_bytes(model) == 160 + 8 * 4 + 1440 + 180 * 4


def test_budget_larger_than_the_model_has_nothing_to_do(
    tiny_checkpoint: Path, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    out = tmp_path / "same.pt"
    for budget in ("1M", "100%", "500kb"):
        result = prune(tiny_checkpoint, tiny_dataset, _split(tiny_dataset), out, budget, **FAST)
        assert result.nothing_to_do
        assert result.checkpoint.path == tiny_checkpoint
    assert not out.exists()


def test_unreachable_budget_names_the_smallest_reachable(
    tiny_checkpoint: Path, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    out = tmp_path / "never.pt"
    with pytest.raises(PpgedgeError, match=r"below the smallest reachable 1,428 parameters"):
        prune(tiny_checkpoint, tiny_dataset, _split(tiny_dataset), out, "1000", **FAST)
    assert not out.exists()


def test_not_a_ppgedge_checkpoint_is_refused(tiny_dataset: Dataset, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    text = tmp_path / "notes.pt"
    text.write_text("not a model")
    for path in (foreign, text, tmp_path / "missing.pt"):
        with pytest.raises(PpgedgeError):
            prune(path, tiny_dataset, _split(tiny_dataset), tmp_path / "x.pt", "50%", **FAST)
