"""``[distill] mix``: function matching. Half the distillation windows get a share of another
window of the batch mixed in, labels kept; off, nothing changes (no key, no digest change)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ppgedge.errors import PpgedgeError
from ppgedge.pipeline.config import validate
from ppgedge.train.trainer import TrainConfig, augment_batch, mix_windows


def test_a_mixed_window_is_a_convex_blend_with_another_window_of_the_batch() -> None:
    x = torch.randn(64, 4, 256)
    out = mix_windows(x, np.random.default_rng(0), 0.4)
    flat_x, flat_out = x.reshape(64, -1), out.reshape(64, -1)
    untouched = (flat_out == flat_x).all(1)
    assert 0.25 < untouched.float().mean() < 0.75  # about half are mixed
    for i in np.flatnonzero(~untouched.numpy()):
        # out_i = (1 - a) x_i + a x_j for one j != i and 0 < a < 0.4: solve for a per j
        diff = flat_out[i] - flat_x[i]
        fits = []
        for j in range(64):
            d = flat_x[j] - flat_x[i]
            a = float((diff @ d) / (d @ d)) if j != i else np.nan
            if j != i and 0 < a < 0.4 and torch.allclose(diff, a * d, atol=1e-5):
                fits.append(j)
        assert len(fits) == 1, (i, fits)
    # deterministic from the generator; a batch of one is returned as it is
    again = mix_windows(x, np.random.default_rng(0), 0.4)
    assert torch.equal(out, again)
    assert torch.equal(mix_windows(x[:1], np.random.default_rng(0), 0.4), x[:1])


def test_off_is_the_augmentation_as_it_was() -> None:
    x, y = torch.randn(16, 4, 256), torch.full((16,), 90.0)
    cfg = TrainConfig(time_stretch="off")
    chans = ("ppg", "acc_x", "acc_y", "acc_z")
    a, _ = augment_batch(x, y, np.random.default_rng(1), chans, cfg)
    b, _ = augment_batch(x, y, np.random.default_rng(1), chans, TrainConfig(time_stretch="off"))
    mixed, labels = augment_batch(
        x, y, np.random.default_rng(1), chans, TrainConfig(time_stretch="off", mix_max=0.4)
    )
    assert torch.equal(a, b) and not torch.equal(a, mixed) and torch.equal(labels, y)
    assert TrainConfig(mix_max=0.4).digest({}) != TrainConfig().digest({})


def test_the_setting_is_validated() -> None:
    assert validate({"distill": {"mix": 0.4}}, "t.toml")["distill"]["mix"] == 0.4
    for bad in (0.5, -0.1, float("nan")):
        with pytest.raises(PpgedgeError, match=r"\[distill\] mix must be"):
            validate({"distill": {"mix": bad}}, "t.toml")
    with pytest.raises(PpgedgeError, match="set augment = true, or mix = 0"):
        validate({"distill": {"mix": 0.2, "augment": False}}, "t.toml")
    # the default (adopted on validation subjects), and off with augmentation off
    assert validate({}, "t.toml")["distill"]["mix"] == 0.4
    assert validate({"distill": {"augment": False}}, "t.toml")["distill"]["mix"] == 0
