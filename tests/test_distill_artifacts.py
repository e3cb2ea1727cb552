"""``[distill] motion_aug_p``: accelerometer-driven artifacts in the distillation, the teacher
labelling each corrupted window. Off (the default), nothing changes: no stage-key entry, so
earlier runs stay current; the from-scratch rival never gets it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ppgedge.errors import PpgedgeError
from ppgedge.pipeline import stages
from ppgedge.pipeline.config import validate
from ppgedge.train.trainer import TrainConfig, augment_batch


def test_the_setting_is_validated() -> None:
    assert validate({}, "t.toml")["distill"]["motion_aug_p"] == 0
    assert validate({"distill": {"motion_aug_p": 0.5}}, "t.toml")["distill"]["motion_aug_p"] == 0.5
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(PpgedgeError, match=r"\[distill\] motion_aug_p must"):
            validate({"distill": {"motion_aug_p": bad}}, "t.toml")
    with pytest.raises(PpgedgeError, match="set augment = true, or motion_aug_p = 0"):
        validate({"distill": {"motion_aug_p": 0.5, "augment": False, "mix": 0.0}}, "t.toml")


def test_off_leaves_the_stage_key_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stages, "_split_params", lambda ctx: {})
    for value, present in ((0.0, False), (0.5, True)):
        cfg = validate({"distill": {"motion_aug_p": value}}, "t.toml")
        params = stages._distill_params(SimpleNamespace(cfg=cfg))
        assert ("motion_aug_p" in params) is present
        assert params["mix"] == 0.4  # the other knobs are untouched
    assert TrainConfig(motion_aug_p=0.5).digest({}) != TrainConfig().digest({})


def test_the_corrupted_window_keeps_its_label_and_changes_the_ppg() -> None:
    """What the teacher labels online: the PPG carries another window's motion, the label is
    the window's own."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 4, 256, generator=g), torch.full((32,), 90.0)
    chans = ("ppg", "acc_x", "acc_y", "acc_z")
    plain = TrainConfig(time_stretch="off")
    corrupted = TrainConfig(time_stretch="off", motion_aug_p=1.0)
    a, ya = augment_batch(x, y, np.random.default_rng(3), chans, plain)
    b, yb = augment_batch(x, y, np.random.default_rng(3), chans, corrupted)
    assert torch.equal(ya, y) and torch.equal(yb, y)
    changed = (a[:, 0] - b[:, 0]).abs().amax(dim=1) > 0.1
    assert changed.float().mean() > 0.9  # every window drawn (p = 1) carries an artifact


def test_the_scratch_rival_gets_neither_mix_nor_artifacts(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    from ppgedge.distill import choose

    seen: list[TrainConfig] = []

    class Stop(Exception):
        pass

    def fake_train(dataset, split, out, cfg, **kwargs):
        seen.append(cfg)
        raise Stop

    monkeypatch.setattr(choose, "train", fake_train)
    cfg = TrainConfig(arch="resnet_micro", mix_max=0.4, motion_aug_p=0.5)
    with pytest.raises(Stop):
        choose.keep_better(SimpleNamespace(arch="resnet_micro"), None, None, tmp_path / "s.pt", cfg)
    assert seen[0].motion_aug_p == 0 and seen[0].mix_max == 0 and seen[0].augment


@pytest.mark.parametrize(
    "flag, needle",
    [("--mix", "add --augment, or --mix 0"), ("--motion-aug", "add --augment, or --motion-aug 0")],
)
def test_the_distill_command_refuses_teacher_labelled_views_without_augmentation(
    tmp_path, flag: str, needle: str
) -> None:
    """Mixing and artifacts corrupt augmented windows for the online teacher to label: without
    --augment there is no such window, and nothing is written."""
    from cli_helpers import assert_user_error, ppgedge

    proc = ppgedge(
        "distill", tmp_path, "-t", tmp_path / "t.pt", "-s", "resnet_micro",
        "-o", tmp_path / "s.pt", flag, "0.2",
    )  # fmt: skip
    assert_user_error(proc, needle)
    assert not (tmp_path / "s.pt").exists()
