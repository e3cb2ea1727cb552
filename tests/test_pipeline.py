"""The main job on tiny settings: every stage runs, artifacts are kept and reused."""

from __future__ import annotations

import json
from pathlib import Path

from ppgedge.pipeline import MainJobObserver, run_main_job


class _Recorder(MainJobObserver):
    def __init__(self) -> None:
        self.stages: list[str] = []
        self.trained: list[str] = []

    def stage(self, name: str, message: str, seconds: float) -> None:
        self.stages.append(name)

    def training(self, label: str):
        self.trained.append(label)
        return super().training(label)


def test_quick_main_job_runs_and_resumes(tmp_path: Path) -> None:
    first = _Recorder()
    result = run_main_job(tmp_path / "run", quick=True, device="cpu", observer=first)
    assert first.stages == ["data", "teacher", "distill", "eval"]
    assert first.trained == ["teacher", "dkd student"]
    models = result["evaluation"]["models"]
    assert list(models) == ["spectral baseline", "teacher resnet_tiny", "student resnet_micro"]
    report = Path(result["report"]).read_text()
    assert "student resnet_micro MAE" in report
    saved = json.loads((tmp_path / "run" / "eval" / "evaluation.json").read_text())
    assert saved["n_windows"] == result["evaluation"]["n_windows"] > 0

    again = _Recorder()
    run_main_job(tmp_path / "run", quick=True, device="cpu", observer=again)
    assert again.trained == [], "finished stages must be reused, not retrained"
