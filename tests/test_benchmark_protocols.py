"""The benchmark protocols behind reported figures: what is chosen on validation, what is a row.

benchmarks/foundation.py picks each fold's SPC teacher on validation subjects only, and
benchmarks/export.py reports one row per distinct network; both are scripts, loaded by path.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ppgedge.data.format import Dataset
from ppgedge.data.splits import holdout
from ppgedge.models.registry import list_models
from ppgedge.train.trainer import TrainConfig, train

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_export_rows_are_distinct_networks() -> None:
    groups = _script("export").distinct([e.name for e in list_models()])
    assert groups["resnet1d"] == ["resnet_base"]  # default knobs = the preset: one row
    assert "resnet_base" not in groups
    assert sum(1 + len(v) for v in groups.values()) == len(list_models())
    assert all(not v for k, v in groups.items() if k != "resnet1d")


@pytest.fixture(scope="module")
def members(tiny_dataset: Dataset, tiny_checkpoint: Path, tmp_path_factory) -> dict[str, Path]:
    split = holdout(tiny_dataset.subjects, seed=0)  # tiny_checkpoint's split
    out = {"a": tiny_checkpoint}
    for seed in (1, 2):
        path = tmp_path_factory.mktemp("members") / f"m{seed}.pt"
        train(tiny_dataset, split, path, TrainConfig(arch="resnet_micro", epochs=1, seed=seed))
        out[f"seed{seed}"] = path
    return out


def test_spc_teacher_is_the_best_subset_on_validation(
    members: dict[str, Path], tiny_dataset: Dataset
) -> None:
    foundation = _script("foundation")
    teacher, chosen = foundation.select_teacher(members, tiny_dataset)
    val = chosen["val_mae_by_candidate"]
    assert chosen["candidates_on_validation"] == len(val) == 7
    assert val[" + ".join(chosen["members"])] == min(val.values()) == chosen["val_mae"]
    assert teacher.decode == chosen["decode"]
    n = len(chosen["members"])
    assert (teacher.arch == "ensemble") == (n > 1)
    assert all(len(k.split(" + ")) >= n for k, v in val.items() if v == chosen["val_mae"])


def test_an_amended_candidate_that_wins_its_rule_is_not_adopted_by_that_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))  # candidate.py imports its sibling scripts
    candidate = _script("candidate")
    scenarios, seeds = candidate.SCENARIOS, candidate.SEEDS
    rows = [{"scenario": s, "seed": n, "val": 1.0, "test": 2.0} for n in seeds for s in scenarios]
    base = {(s, n): {"val": 1.5, "test": 2.0, "teacher": 1.0} for n in seeds for s in scenarios}
    gentle = candidate.summarise(rows, base, "gentle")
    assert gentle["adopted"] and "wins_rule" not in gentle  # lower in 6 of 6
    amended = candidate.summarise(rows, base, "simscaled")
    assert amended["wins_rule"] and not amended["adopted"] and amended["amendment"]
    doc = {"summary": amended, "candidate": "simscaled", "ppgedge": "x", "date": "d", "runs": []}
    assert "not adopted by that alone" in candidate.markdown(doc)
    worse = {k: {**v, "val": 0.5} for k, v in base.items()}
    lost = candidate.summarise(rows, worse, "simscaled")
    assert not lost["wins_rule"] and not lost["adopted"]


def test_a_new_candidate_must_also_win_the_paired_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """After 2026-12-07 a candidate needs its scenario count and a sign-test count of the 18
    paired runs: lower in 5 of 6 scenario means can hide a change lower in few runs."""
    monkeypatch.syspath_prepend(str(BENCH))
    candidate = _script("candidate")
    scenarios, seeds = candidate.SCENARIOS, candidate.SEEDS
    base = {(s, n): {"val": 1.0, "test": 2.0, "teacher": 1.0} for n in seeds for s in scenarios}

    def rows(lower_per_scenario: int) -> list[dict]:
        # in 5 scenarios the first `lower_per_scenario` seeds slightly lower, the rest a little
        # higher, yet each scenario's mean lower; the sixth scenario higher at every seed
        out = []
        for s in scenarios:
            for n in seeds:
                lower = s != scenarios[-1] and n < lower_per_scenario
                val = 0.5 if lower else (1.01 if s != scenarios[-1] else 1.5)
                out.append({"scenario": s, "seed": n, "val": val, "test": 2.0})
        return out

    few = candidate.summarise(rows(1), base, "future")  # 5 of 18 runs lower
    assert len(few["lower_on_validation"]) == 5 and few["lower_runs"] == 5
    assert not few["adopted"]
    many = candidate.summarise(rows(3), base, "future")  # 15 of 18
    assert many["lower_runs"] == 15 and many["adopted"]
    # the candidates judged before the paired count keep the rule they were run under
    assert candidate.summarise(rows(1), base, "gentle")["adopted"]
    assert "lower_runs" not in candidate.summarise(rows(1), base, "gentle")
