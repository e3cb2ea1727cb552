"""Splits are by subject: no subject, hence no window of one subject, in two parts."""

from __future__ import annotations

import numpy as np
import pytest

from ppgedge.data.format import Dataset
from ppgedge.data.splits import holdout, kfold, loso, parse_split
from ppgedge.errors import PpgedgeError

SUBJECTS = [f"s{i:02d}" for i in range(10)]


def _assert_no_window_in_two_parts(split, dataset: Dataset) -> None:
    idx = split.indices(dataset.subject_names())
    parts = [set(idx["train"]), set(idx["val"]), set(idx["test"])]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    for part in ("train", "val", "test"):
        names = set(dataset.subject_names(idx[part]))
        assert names == set(getattr(split, part))


def test_holdout_on_dataset(tiny_dataset: Dataset) -> None:
    split = holdout(tiny_dataset.subjects, seed=0)
    assert split.train and split.val and split.test
    _assert_no_window_in_two_parts(split, tiny_dataset)


def test_kfold_covers_every_subject_once() -> None:
    folds = kfold(SUBJECTS, 5, seed=1)
    tested = [s for f in folds for s in f.test]
    assert sorted(tested) == SUBJECTS
    for f in folds:
        assert not set(f.train) & set(f.test) and not set(f.val) & set(f.test)
        assert len(f.train) + len(f.val) + len(f.test) == len(SUBJECTS)


def test_loso_and_parse(tiny_dataset: Dataset) -> None:
    splits = loso(SUBJECTS)
    assert sorted(s.test for s in splits) == [(s,) for s in SUBJECTS]
    one = parse_split(f"loso:{tiny_dataset.subjects[0]}", tiny_dataset.subjects)
    _assert_no_window_in_two_parts(one, tiny_dataset)
    named = parse_split("holdout:test=s01,s02;val=s03", SUBJECTS)
    assert named.test == ("s01", "s02") and named.val == ("s03",)
    assert parse_split("kfold:5:2", SUBJECTS) == kfold(SUBJECTS, 5)[2]


@pytest.mark.parametrize(
    "spec",
    ["bogus", "kfold:5", "kfold:5:9", "loso:nobody", "holdout:test=zz", "holdout:colour=red"],
)
def test_bad_split_specs(spec: str) -> None:
    with pytest.raises(PpgedgeError):
        parse_split(spec, SUBJECTS)


def test_holdout_is_seeded() -> None:
    assert holdout(SUBJECTS, seed=4) == holdout(SUBJECTS, seed=4)
    assert np.any(
        [holdout(SUBJECTS, seed=s).test != holdout(SUBJECTS, seed=4).test for s in range(4)]
    )
