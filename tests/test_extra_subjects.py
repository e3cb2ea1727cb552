"""Synthetic motion subjects lent to the training subjects (``[data] synthetic_motion``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ppgedge.data.extra_subjects import (
    subject_names,
    synthetic_motion_subjects,
    with_extra_subjects,
)
from ppgedge.data.format import DataFormat, Dataset
from ppgedge.errors import PpgedgeError
from ppgedge.pipeline.config import RunConfig, load_run_config, validate, with_values
from ppgedge.pipeline.run import quick_config
from ppgedge.pipeline.stages import STAGE_LIST, Context


def test_extra_subjects_move_in_motion_and_are_nobody_else() -> None:
    fmt = DataFormat()
    extra = synthetic_motion_subjects(2, 7, fmt)
    again = synthetic_motion_subjects(2, 7, fmt)
    assert extra.subjects == ["simmotion00", "simmotion01"] == list(subject_names(2))
    assert set(extra.recordings) == set(extra.subjects)
    np.testing.assert_array_equal(extra.x, again.x)  # reproducible from the run seed
    acts = {extra.activities[a] for a in np.unique(extra.activity)}
    assert {"arm", "boxing"} <= acts or {"arm", "stairs"} <= acts or {"boxing", "stairs"} <= acts
    from ppgedge.data.synth import synthesize

    own = synthesize(2, 6.0, 7, fmt, motion=True)  # the data's own subjects at that seed
    n = min(len(own), len(extra))
    assert not np.allclose(own.y[:n], extra.y[:n])  # a stream of their own: other people


def test_with_extra_subjects_keeps_every_base_window(tmp_path: Path, tiny_dataset: Dataset) -> None:
    out = with_extra_subjects(tiny_dataset, 1, 0, tmp_path / "merged.ppgds")
    merged = Dataset(out)
    n = len(tiny_dataset)
    assert merged.subjects == [*tiny_dataset.subjects, "simmotion00"]
    np.testing.assert_array_equal(np.asarray(merged.x[:n]), np.asarray(tiny_dataset.x))
    np.testing.assert_array_equal(np.asarray(merged.y[:n]), np.asarray(tiny_dataset.y))
    assert merged.source == tiny_dataset.source and len(merged) > n
    prov = merged.meta["provenance"]
    assert prov["synthetic_motion"]["role"] == "training subjects only"
    assert prov["base"]["where"] == str(tiny_dataset.path)
    with pytest.raises(PpgedgeError, match="already has subject"):
        with_extra_subjects(merged, 1, 0, tmp_path / "twice.ppgds")
    assert not (tmp_path / "twice.ppgds").exists()  # nothing half-written


def _split_after_data_stage(
    tmp_path: Path, dataset: Path, n: int, who: str = "all", epochs: str = "all"
):
    out = tmp_path / f"run{n}{who}{epochs}"
    cfg = with_values(
        load_run_config(),
        data={
            "source": "dataset",
            "path": str(dataset),
            "synthetic_motion": n,
            "synthetic_motion_for": who,
            "synthetic_motion_epochs": epochs,
        },
        run={"out": str(out)},
    )
    ctx = Context(cfg, out, "cpu")
    STAGE_LIST[0].run(ctx)
    return ctx


def test_lent_subjects_train_only_and_leave_the_split_as_it_was(
    tmp_path: Path, tiny_dataset_path: Path
) -> None:
    plain = _split_after_data_stage(tmp_path, tiny_dataset_path, 0)
    lent = _split_after_data_stage(tmp_path, tiny_dataset_path, 2)
    assert plain.data_dir == tiny_dataset_path  # read in place when nothing is lent
    assert lent.data_dir == tmp_path / "run2allall" / "data" / "dataset.ppgds"
    a, b = plain.split, lent.split
    assert (b.val, b.test) == (a.val, a.test)
    assert b.train == tuple(sorted(a.train + ("simmotion00", "simmotion01")))
    assert lent.epoch_scale < plain.epoch_scale  # more training windows
    assert lent.split_for("teacher") == b
    # lent to the teacher alone: the later stages train on the recorded subjects only
    teacher_only = _split_after_data_stage(tmp_path, tiny_dataset_path, 2, "teacher")
    assert teacher_only.split_for("teacher") == b
    assert teacher_only.split == a and teacher_only.epoch_scale == plain.epoch_scale
    assert teacher_only.epoch_scale_for("teacher") == lent.epoch_scale
    # every stage, the later ones' epochs scaled to the recorded windows: the synthetic on top
    on_top = _split_after_data_stage(tmp_path, tiny_dataset_path, 2, "all", "recorded")
    assert on_top.split == b and on_top.epoch_scale == plain.epoch_scale
    assert on_top.epoch_scale_for("teacher") == lent.epoch_scale  # the teacher's: all it sees


def test_config_refuses_lent_subjects_outside_training() -> None:
    base = load_run_config().to_dict()
    base["budget"] = {}  # unset: the target's own
    for bad in ({"synthetic_motion": -1}, {"synthetic_motion": 65}):
        with pytest.raises(PpgedgeError, match="synthetic_motion must be"):
            validate({**base, "data": {**base["data"], **bad}}, "t.toml")
    named = {"synthetic_motion": 2, "test_subjects": ["simmotion01"]}
    with pytest.raises(PpgedgeError, match="for training only"):
        validate({**base, "data": {**base["data"], **named}}, "t.toml")
    teacher_only = {"synthetic_motion": 2, "synthetic_motion_for": "teacher"}
    given = {**base["teacher"], "path": "teacher.pt"}
    with pytest.raises(PpgedgeError, match="no stage would train on"):
        validate({**base, "data": {**base["data"], **teacher_only}, "teacher": given}, "t.toml")


def test_default_lends_the_teacher_alone_and_nobody_beside_a_given_teacher() -> None:
    """The defaults lend 8 subjects to the teacher; a given teacher leaves nobody to lend to, so
    the default turns them off (an explicit count beside a teacher path is refused, above)."""
    plain = validate({}, "t.toml")["data"]
    assert (plain["synthetic_motion"], plain["synthetic_motion_for"]) == (8, "teacher")
    given = validate({"teacher": {"path": "teacher.pt"}}, "t.toml")["data"]
    assert given["synthetic_motion"] == 0
    every = validate({"teacher": {"path": "t.pt"}, "data": {"synthetic_motion_for": "all"}}, "t")
    assert every["data"]["synthetic_motion"] == 8  # the later stages still train on them


def test_quick_lends_one_subject_at_most() -> None:
    """``run --quick`` is a smoke test: one synthetic motion subject still takes that path, the
    default eight (ten times its recordings) would not be quick; none stays none."""

    def lent(raw: dict) -> int:
        return quick_config(RunConfig(validate(raw, "t.toml"), None))["data"]["synthetic_motion"]

    quick = quick_config(RunConfig(validate({}, "t.toml"), None))
    assert quick["run"]["reference_windows"] == 0  # its epochs are not scaled up for tiny data
    assert lent({}) == 1
    assert lent({"data": {"synthetic_motion": 0}}) == 0
    assert lent({"teacher": {"path": "teacher.pt"}}) == 0  # not refused as an explicit count
    every = {"teacher": {"path": "t.pt"}, "data": {"synthetic_motion_for": "all"}}
    assert lent(every) == 1
