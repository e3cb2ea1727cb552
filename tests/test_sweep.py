"""Sweep: resumable grid, its files, and the scaling-law fit on known curves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from cli_helpers import assert_user_error

from ppgedge.data.format import Dataset
from ppgedge.data.splits import holdout
from ppgedge.distill.crossval import aggregate_cv, fit_all_cv
from ppgedge.distill.grid import fold_splits, make_cells
from ppgedge.distill.scaling import fit_scaling_law
from ppgedge.distill.sweep import run_sweep
from ppgedge.train.trainer import TrainConfig


def test_sweep_writes_files_and_resumes(
    tiny_dataset: Dataset, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    split = holdout(tiny_dataset.subjects, seed=0)
    kwargs = dict(
        students=["resnet_micro", "mlp_micro"],
        methods=["scratch", "soft"],
        seeds=[0],
        cache_dir=tmp_path / "cache",
        device="cpu",
    )
    seen: list[tuple[str, bool]] = []

    def sweep() -> dict:
        return run_sweep(
            tiny_checkpoint,
            tiny_dataset,
            split,
            tmp_path / "sw",
            TrainConfig(epochs=1),
            on_run=lambda r, s: seen.append((r["key"], s)),
            **kwargs,
        )

    doc = sweep()
    assert doc["runs"] == 4 and not any(skipped for _, skipped in seen)
    for name in ("results.jsonl", "results.csv", "summary.json", "sweep.md", "sweep.png"):
        assert (tmp_path / "sw" / name).exists(), name
    summary = json.loads((tmp_path / "sw" / "summary.json").read_text())
    assert {s["method"] for s in summary["summary"]} == {"scratch", "soft"}
    seen.clear()
    sweep()
    assert len(seen) == 4 and all(skipped for _, skipped in seen)
    lines = (tmp_path / "sw" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 4


def test_scaling_law_recovers_known_parameters() -> None:
    n = np.array([2_000, 6_000, 17_000, 56_000, 200_000] * 3, float)
    y = 1.5 + 6.0 * np.exp(-n / 20_000.0)
    law = fit_scaling_law(n, y, "exp")
    assert law["ok"] and law["r2"] > 0.999
    assert abs(law["a"] - 6.0) < 0.05 and abs(law["b"] - 0.05) < 0.005
    assert abs(law["c"] - 1.5) < 0.05
    assert not fit_scaling_law([1e3, 2e3], [3.0, 2.0], "exp")["ok"]


def test_fold_splits_are_subject_wise_with_validation_inside_training() -> None:
    subjects = [f"s{i:02d}" for i in range(9)]
    folds = fold_splits(subjects, 3)
    assert sorted(s for f in folds for s in f.test) == subjects  # every subject tested once
    for f in folds:
        assert f.val and f.train and not (set(f.val) | set(f.train)) & set(f.test)
        assert not set(f.val) & set(f.train)
    keys = [c.key for c in make_cells(["a"], ["scratch"], [0, 1], 3)]
    assert len(keys) == len(set(keys)) == 6 and keys[0] == "scratch-a-s0-f0"
    assert make_cells(["a"], ["soft"], [2], None)[0].key == "soft-a-s2"  # old sweeps resume


def test_weighted_law_fit_uses_fold_and_seed_error_bars() -> None:
    rng = np.random.default_rng(0)
    sizes = [2_000, 6_000, 17_000, 56_000, 200_000]
    rows = []
    for n in sizes:
        for fold in range(3):
            for seed in range(2):
                mae = 1.5 + 6.0 * np.exp(-n / 20_000.0) + rng.normal(0, 0.05)
                rows.append(
                    dict(
                        method="soft",
                        student=f"m{n}",
                        family="resnet",
                        parameters=n,
                        fold=fold,
                        seed=seed,
                        test_mae=float(mae),
                    )
                )
    summary = aggregate_cv(rows)
    assert all(s["runs"] == 6 and s["folds"] == 3 and s["seeds"] == 2 for s in summary)
    law = fit_all_cv(rows, summary)["soft (resnet) exp"]
    assert law["ok"] and law["weighted"] and law["r2"] > 0.99
    assert abs(law["a"] - 6.0) < 4 * law["a_se"] + 0.05 and 0 < law["a_se"] < 0.2
    assert abs(law["c"] - 1.5) < 4 * law["c_se"] + 0.05


def test_failed_cell_is_retried_then_listed_never_dropped(
    tiny_dataset: Dataset, tiny_checkpoint: Path, tmp_path: Path, monkeypatch
) -> None:
    import ppgedge.distill.engines.local as local

    real, calls = local.run_cell, []

    def flaky(cell, ctx, out):
        calls.append(cell.key)
        if cell.key == "scratch-mlp_micro-s0-f1":
            raise RuntimeError("worker ran out of memory")
        return real(cell, ctx, out)

    kwargs = dict(students=["mlp_micro"], methods=["scratch"], seeds=[0], folds=2, device="cpu")
    monkeypatch.setattr(local, "run_cell", flaky)
    doc = run_sweep(
        tiny_checkpoint,
        tiny_dataset,
        None,
        tmp_path / "sw",
        TrainConfig(epochs=1),
        retries=1,
        **kwargs,
    )
    assert calls.count("scratch-mlp_micro-s0-f1") == 2  # first try + one retry
    assert doc["runs"] == 1 and doc["cells"] == 2 and doc["not_run"] == []
    assert doc["failed"][0]["key"] == "scratch-mlp_micro-s0-f1"
    assert "RuntimeError: worker ran out of memory" in doc["failed"][0]["error"]
    assert "scratch-mlp_micro-s0-f1" in (tmp_path / "sw" / "sweep.md").read_text()
    monkeypatch.setattr(local, "run_cell", real)
    doc = run_sweep(
        tiny_checkpoint, tiny_dataset, None, tmp_path / "sw", TrainConfig(epochs=1), **kwargs
    )
    assert doc["runs"] == doc["cells"] == 2 and doc["failed"] == []


def test_ray_engine_without_ray_is_one_line_naming_the_extra(
    tiny_dataset: Dataset, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    no_ray = (  # as if the extra were not installed, whether or not it is
        "import sys; sys.modules['ray'] = None; sys.argv = ['ppgedge', *sys.argv[1:]]; "
        "from ppgedge.cli import main; main()"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            no_ray,
            "sweep",
            str(tiny_dataset.path),
            "-t",
            str(tiny_checkpoint),
            "-o",
            str(tmp_path / "o"),
            "--students",
            "mlp_micro",
            "--methods",
            "scratch",
            "--engine",
            "ray",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "120", "PATH": ""},
    )
    assert_user_error(proc, 'pip install -e ".[ray]"')
    assert not (tmp_path / "o").exists()  # refused before any work


def test_teacher_that_saw_a_folds_test_subjects_is_named(
    tiny_dataset: Dataset, tiny_checkpoint: Path
) -> None:
    from ppgedge.distill.sweep import teacher_saw_test_subjects
    from ppgedge.distill.teachers import load_teacher

    teacher = load_teacher(tiny_checkpoint, tiny_dataset.fmt)  # trained on holdout seed 0
    held_out = holdout(tiny_dataset.subjects, seed=0)
    assert teacher_saw_test_subjects(teacher, tiny_dataset, [held_out]) == {}
    folds = fold_splits(tiny_dataset.subjects, 2)
    seen = teacher_saw_test_subjects(teacher, tiny_dataset, folds)
    trained_on = set(held_out.train) | set(held_out.val)
    assert seen and all(set(v) <= trained_on for v in seen.values())
