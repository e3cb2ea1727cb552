"""Subject-wise splits: held-out subjects, k-fold and leave-one-subject-out.

Windows overlap by 6 s, so splitting by window would leak almost the same signal into train and
test; every split here is by subject, and :func:`check_disjoint` enforces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np

from ppgedge.errors import PpgedgeError


@dataclass(frozen=True)
class Split:
    """Subject names for training, validation (early stopping) and test."""

    name: str
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def indices(self, subject_names: np.ndarray) -> dict[str, np.ndarray]:
        """Window indices for each part, given each window's subject name."""
        names = np.asarray(subject_names, dtype=object)
        return {
            part: np.flatnonzero(np.isin(names, list(getattr(self, part))))
            for part in ("train", "val", "test")
        }

    @classmethod
    def from_dict(cls, d: dict) -> Split:
        """The split a checkpoint records (:meth:`to_dict`)."""
        return cls(
            str(d.get("name", "split")), tuple(d["train"]), tuple(d["val"]), tuple(d["test"])
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "train": list(self.train),
            "val": list(self.val),
            "test": list(self.test),
        }


def check_disjoint(split: Split) -> None:
    parts = [set(split.train), set(split.val), set(split.test)]
    if parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2]:
        raise PpgedgeError(f"split '{split.name}' puts one subject in two parts")


def _shuffled(subjects: list[str], seed: int) -> list[str]:
    order = np.random.default_rng(seed).permutation(len(subjects))
    return [subjects[i] for i in order]


def _take_val(pool: list[str], n_val: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    n_val = min(n_val, max(len(pool) - 1, 0))
    return tuple(pool[n_val:]), tuple(pool[:n_val])


N_QUANTILES = 21  # label quantiles compared by representative_val (5 % steps)
MAX_COMBINATIONS = 5000  # above this many candidate sets, representative_val is greedy


def _distance(labels: np.ndarray, reference: np.ndarray) -> float:
    """Mean absolute difference of the two label distributions' quantiles (a 1-Wasserstein
    estimate, in BPM)."""
    q = np.linspace(0.0, 1.0, N_QUANTILES)
    return float(np.mean(np.abs(np.quantile(labels, q) - np.quantile(reference, q))))


def representative_val(
    pool: list[str], labels: dict[str, np.ndarray], n_val: int
) -> tuple[str, ...]:
    """The ``n_val`` subjects of ``pool`` whose heart rates, pooled, are distributed most like
    the whole pool's (every set when there are at most :data:`MAX_COMBINATIONS`, else greedily).

    With two validation subjects out of nine, a random draw can pick the two with the highest
    heart rates; early stopping and every stage's choice then optimise for them, and validation
    MAE says little about the test subjects. ``pool`` order breaks ties (callers shuffle it)."""
    n_val = min(n_val, max(len(pool) - 1, 0))
    if n_val == 0:
        return ()
    reference = np.concatenate([np.asarray(labels[s], np.float64) for s in pool])

    def score(chosen: tuple[str, ...]) -> float:
        return _distance(np.concatenate([np.asarray(labels[s]) for s in chosen]), reference)

    if comb(len(pool), n_val) <= MAX_COMBINATIONS:
        return min(combinations(pool, n_val), key=score)
    chosen: tuple[str, ...] = ()
    for _ in range(n_val):
        rest = [s for s in pool if s not in chosen]
        chosen = min(((*chosen, s) for s in rest), key=score)
    return chosen


def holdout(
    subjects: list[str],
    *,
    test: list[str] | None = None,
    val: list[str] | None = None,
    test_fraction: float = 0.2,
    val_fraction: float = 0.15,
    seed: int = 0,
    labels: dict[str, np.ndarray] | None = None,
) -> Split:
    """Fixed held-out subjects: named ones, or a seeded draw of the given fractions. Given
    each subject's ``labels``, unnamed validation subjects are the representative ones
    (:func:`representative_val`) instead of a random draw."""
    subjects = sorted(subjects)
    unknown = [s for s in (test or []) + (val or []) if s not in subjects]
    if unknown:
        raise PpgedgeError(f"subject(s) {unknown} are not in the dataset (it has {subjects})")
    if len(subjects) < 3:
        raise PpgedgeError(
            f"a held-out split needs at least 3 subjects, the dataset has {len(subjects)}"
        )
    pool = _shuffled(subjects, seed)
    if test is None:
        n_test = max(1, round(test_fraction * len(subjects)))
        test = [s for s in pool if s not in (val or [])][:n_test]
    rest = [s for s in pool if s not in test]
    if val is None and labels is not None:
        val_t = representative_val(rest, labels, max(1, round(val_fraction * len(subjects))))
        train_t = tuple(s for s in rest if s not in val_t)
    elif val is None:
        n_val = max(1, round(val_fraction * len(subjects)))
        train_t, val_t = _take_val(rest, n_val)
    else:
        val_t = tuple(val)
        train_t = tuple(s for s in rest if s not in val)
    split = Split("holdout", tuple(sorted(train_t)), tuple(sorted(val_t)), tuple(sorted(test)))
    check_disjoint(split)
    return split


def kfold(subjects: list[str], k: int, *, n_val: int | None = None, seed: int = 0) -> list[Split]:
    """``k`` folds of test subjects; validation subjects drawn from the remaining ones
    (by default 15 % of them, at least one: one subject alone is too noisy to stop on)."""
    subjects = sorted(subjects)
    if not 2 <= k <= len(subjects):
        raise PpgedgeError(f"k-fold needs 2 <= k <= {len(subjects)} subjects, got k={k}")
    pool = _shuffled(subjects, seed)
    folds = [pool[i::k] for i in range(k)]
    splits = []
    for i, test in enumerate(folds):
        rest = _shuffled([s for s in pool if s not in test], seed + i + 1)
        train, val = _take_val(
            rest, n_val if n_val is not None else max(1, round(0.15 * len(rest)))
        )
        split = Split(f"fold{i}", tuple(sorted(train)), tuple(sorted(val)), tuple(sorted(test)))
        check_disjoint(split)
        splits.append(split)
    return splits


def loso(subjects: list[str], *, n_val: int | None = None, seed: int = 0) -> list[Split]:
    """Leave one subject out: one split per subject."""
    subjects = sorted(subjects)
    out = kfold(subjects, len(subjects), n_val=n_val, seed=seed)
    return [Split(f"loso-{s.test[0]}", s.train, s.val, s.test) for s in out]


def parse_split(spec: str, subjects: list[str], *, seed: int = 0) -> Split:
    """One split from a command-line spec.

    ``holdout`` (seeded 20 % test, 15 % validation subjects), ``holdout:test=a,b;val=c``,
    ``kfold:K:I`` (fold I of K) or ``loso:SUBJECT``.
    """
    kind, _, rest = spec.partition(":")
    if kind == "holdout":
        named: dict[str, list[str]] = {}
        for item in filter(None, rest.split(";")):
            key, _, value = item.partition("=")
            if key not in ("test", "val"):
                raise PpgedgeError(f"bad split '{spec}': holdout takes test=...;val=...")
            named[key] = [v for v in value.split(",") if v]
        return holdout(subjects, test=named.get("test"), val=named.get("val"), seed=seed)
    if kind == "kfold":
        try:
            k, i = (int(v) for v in rest.split(":"))
        except ValueError:
            raise PpgedgeError(f"bad split '{spec}': use kfold:K:I, e.g. kfold:5:0") from None
        folds = kfold(subjects, k, seed=seed)
        if not 0 <= i < k:
            raise PpgedgeError(f"bad split '{spec}': fold index must be 0..{k - 1}")
        return folds[i]
    if kind == "loso":
        for s in loso(subjects, seed=seed):
            if s.test == (rest,):
                return s
        raise PpgedgeError(f"bad split '{spec}': subject '{rest}' is not in {sorted(subjects)}")
    raise PpgedgeError(f"unknown split '{spec}': use holdout, kfold:K:I or loso:SUBJECT")
