"""The spectral head (models/spectral.py): its fixed DFT reads the PPG's heart rate, its
evidence shifts with the heart rate, and the chain builds it from the data's own format."""

from __future__ import annotations

import math

import pytest
import torch
from cli_helpers import assert_user_error, ppgedge

from ppgedge.errors import PpgedgeError
from ppgedge.models import create_model
from ppgedge.models.bpm import BPM_MIN, N_CLASSES
from ppgedge.models.registry import check_arch_kwargs, format_kwargs
from ppgedge.models.spectral import PARTS, SpectralResNet


def _model(rate: float = 32.0, seconds: float = 8.0) -> SpectralResNet:
    n = int(rate * seconds)
    return create_model(
        "resnet_small_spectral", in_channels=4, window_samples=n, sample_rate_hz=rate
    ).eval()


def _magnitude(model: SpectralResNet, x: torch.Tensor) -> torch.Tensor:
    """|DFT| at every bin from the rectified parts: (+cos - -cos, +sin - -sin)."""
    head = model.spectral
    parts = head.act(head.dft(head.pool(x.unsqueeze(2)).flatten(1)))
    p = parts.reshape(len(x), head.bins, PARTS)
    return torch.hypot(p[..., 0] - p[..., 1], p[..., 2] - p[..., 3])


@pytest.mark.parametrize("rate", [32.0, 25.0, 64.0])
def test_the_fixed_dft_peaks_at_the_ppgs_heart_rate(rate: float) -> None:
    model = _model(rate)
    n = model.spectral.dft.in_features * model.spectral.pool_by
    t = torch.arange(n) / rate
    for bpm in (42, 75, 133, 201):
        x = torch.randn(1, 4, n) * 0.3  # accelerometer noise must not matter: PPG only
        x[0, 0] = torch.sin(2 * math.pi * bpm / 60 * t + 0.7)
        mag = _magnitude(model, x)[0]
        assert int(mag.argmax()) - model.spectral.margin + BPM_MIN == bpm


def test_the_heads_evidence_shifts_with_the_heart_rate() -> None:
    """No per-class weights: spectral parts shifted by s bins give logits shifted by s."""
    torch.manual_seed(0)
    head = _model().spectral
    for m in head.convs.modules():  # non-trivial batch-norm statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    grid = torch.rand(2, PARTS, 1, head.bins + 10)
    out = head.convs(grid).flatten(1)
    shifted = head.convs(grid[..., 7:]).flatten(1)
    torch.testing.assert_close(shifted[:, : out.shape[1] - 7], out[:, 7:])
    assert head.convs(grid[..., : head.bins]).shape[-1] == N_CLASSES


def test_the_chain_builds_it_from_the_data_format() -> None:
    assert format_kwargs("resnet_small_spectral", 200, 25.0) == {
        "window_samples": 200,
        "sample_rate_hz": 25.0,
    }
    assert format_kwargs("mlp_micro", 200, 25.0) == {"window_samples": 200}
    assert format_kwargs("resnet_small", 200, 25.0) == {}
    model = _model(25.0)
    assert model(torch.randn(3, 4, 200)).shape == (3, N_CLASSES)
    assert model.spectral.pool_by == 3 and model.spectral.dft.in_features == 66


@pytest.mark.parametrize("rate", [0.0, 5.0, float("nan"), 1e6])
def test_a_sample_rate_the_head_cannot_read_is_a_user_error(rate: float) -> None:
    with pytest.raises(PpgedgeError, match="sample_rate_hz"):
        create_model("resnet_small_spectral", window_samples=256, sample_rate_hz=rate)
    with pytest.raises(PpgedgeError, match="fewer than 8 samples"):
        create_model("resnet_small_spectral", window_samples=16, sample_rate_hz=1000.0)


def test_the_fixed_layers_do_not_train() -> None:
    model = _model()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not any(n.startswith(("spectral.dft", "spectral.pool")) for n in trainable)
    assert any(n.startswith("spectral.convs") for n in trainable)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sample_rate_hz": "fast"},
        {"sample_rate_hz": 1e9},
        {"sample_rate_hz": True},
        {"head_width": 10**6},
    ],
)
def test_a_checkpoints_spectral_knobs_are_bounded(kwargs: dict) -> None:
    with pytest.raises(PpgedgeError):
        check_arch_kwargs("resnet_small_spectral", kwargs, "ckpt.pt")


def test_a_head_that_would_read_no_ppg_is_refused(tiny_dataset_path, tmp_path) -> None:
    with pytest.raises(PpgedgeError, match="reads 'ppg' from the first input channel"):
        format_kwargs("resnet_small_spectral", 256, 32.0, ("acc_x", "acc_y", "acc_z"))
    assert format_kwargs("resnet_small_spectral", 256, 32.0, ("ppg", "acc_x"))
    out = tmp_path / "s.pt"
    proc = ppgedge(
        "train", str(tiny_dataset_path), "--model", "resnet_small_spectral", "--channels",
        "acc", "--epochs", "1", "--out", str(out),
    )  # fmt: skip
    assert_user_error(proc, "reads 'ppg' from the first input channel")
    assert not out.exists()
    config = tmp_path / "run.toml"
    config.write_text(
        f'[run]\nout = "{tmp_path / "run"}"\n[data]\nchannels = "acc"\n'
        '[distill]\nstudent = "resnet_small_spectral"\n'
    )
    proc = ppgedge("run", "--config", str(config))
    assert_user_error(proc, "reads 'ppg' from the first input channel")
    assert not (tmp_path / "run").exists()  # refused before anything was written
