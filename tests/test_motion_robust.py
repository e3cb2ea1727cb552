"""Motion-robust training inputs: the generator's arm-exercise / boxing / stairs sessions and the
accelerometer-driven augmentation are reproducible from the seed, and leave the defaults alone."""

from __future__ import annotations

import hashlib
import tomllib

import numpy as np
import pytest
import torch

from ppgedge.data.synth import ACTIVITIES, generate_recordings, synthesize
from ppgedge.data.synth_motion import MOTION_ACTIVITIES
from ppgedge.errors import PpgedgeError
from ppgedge.pipeline.config import TEMPLATE, validate
from ppgedge.train.motion_augment import motion_augment
from ppgedge.train.trainer import TrainConfig, augment_batch

CHANNELS = ("ppg", "acc_x", "acc_y", "acc_z")


def _digest(recs) -> str:
    h = hashlib.sha256()
    for r in recs:
        for ch in CHANNELS:
            h.update(r.signals[ch][0].tobytes())
        h.update(r.beat_times_s.tobytes())
        h.update(repr(r.activity_segments).encode())
    return h.hexdigest()


def test_motion_sessions_are_seeded_and_move_the_wrist_hard() -> None:
    recs = generate_recordings(3, 6.0, seed=4, motion=True)
    assert _digest(recs) == _digest(generate_recordings(3, 6.0, seed=4, motion=True))
    assert _digest(recs) != _digest(generate_recordings(3, 6.0, seed=5, motion=True))
    names = {n for r in recs for _, _, n in r.activity_segments}
    assert names & set(MOTION_ACTIVITIES), names  # every subject has one motion activity
    for r in recs:
        acc = np.stack([r.signals[c][0] for c in CHANNELS[1:]])
        rate = r.signals["ppg"][1]
        dyn = np.abs(np.linalg.norm(acc, axis=0) - 1.0)
        for a, b, name in r.activity_segments:
            part = dyn[int(a * rate) : int(b * rate)]
            if name in MOTION_ACTIVITIES:
                assert part.max() > 1.0, name  # bursts over 1 g beyond gravity
            if name == "rest":
                assert part.max() < 1.0
    # the same subjects' physiology: subject k's beats differ, its name and count do not
    plain = generate_recordings(3, 6.0, seed=4)
    assert [r.subject for r in plain] == [r.subject for r in recs]
    data = synthesize(2, 6.0, seed=4, motion=True)
    assert data.provenance["motion"] is True
    assert set(data.activities) <= set(ACTIVITIES) | set(MOTION_ACTIVITIES)


def test_motion_off_is_the_default_generator() -> None:
    """``motion=False`` draws nothing extra: synth/2 data are unchanged (same digest as the
    default call), so existing datasets and the main job keep their data."""
    assert _digest(generate_recordings(2, 2.0, seed=3)) == _digest(
        generate_recordings(2, 2.0, seed=3, motion=False)
    )
    assert "motion" not in synthesize(1, 1.0, seed=3).provenance


def test_augmentation_is_reproducible_and_keeps_labels() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 4, 256, generator=g)
    y = torch.full((16,), 90.0)
    a = motion_augment(x, np.random.default_rng(1), CHANNELS, 0.5)
    b = motion_augment(x, np.random.default_rng(1), CHANNELS, 0.5)
    assert torch.equal(a, b)
    changed = (a != x).flatten(1).any(dim=1)
    assert 0 < int(changed.sum()) < 16
    # re-normalised like the model input: per window and channel, mean 0 and std 1
    assert torch.allclose(a[changed].mean(-1), torch.zeros(1), atol=1e-4)
    assert torch.allclose(a[changed].std(-1, unbiased=False), torch.ones(1), atol=5e-3)
    # no accelerometer in the input: nothing to inject
    assert torch.equal(motion_augment(x[:, :1], np.random.default_rng(1), ("ppg",), 0.5), x[:, :1])
    # p = 0 (the default) draws nothing: the trainer's stream is as before this option
    cfg = TrainConfig()
    assert cfg.motion_aug_p == 0.0
    out0, _ = augment_batch(x, y, np.random.default_rng(3), CHANNELS, cfg)
    cfg_on = TrainConfig(motion_aug_p=0.5)
    out1, y1 = augment_batch(x, y, np.random.default_rng(3), CHANNELS, cfg_on)
    out2, y2 = augment_batch(x, y, np.random.default_rng(3), CHANNELS, cfg_on)
    assert torch.equal(out1, out2) and torch.equal(y1, y2)
    assert not torch.equal(out0, out1)
    # the motion augmentation itself never changes labels (time stretching does, on purpose)
    no_stretch = TrainConfig(motion_aug_p=0.5, stretch_p=0.0)
    assert torch.equal(augment_batch(x, y, np.random.default_rng(3), CHANNELS, no_stretch)[1], y)


def test_run_config_knob_is_off_by_default_and_checked() -> None:
    assert validate(tomllib.loads(TEMPLATE), "template")["teacher"]["motion_aug_p"] == 0.0
    with pytest.raises(PpgedgeError, match="motion_aug_p must be between 0 and 1"):
        validate({"teacher": {"motion_aug_p": 1.5}}, "cfg")
