"""The main job: every stage built so far, chained on the built-in synthetic data.

Today: synthetic data -> teacher -> distilled student (DKD) -> evaluation of both on held-out
subjects beside the spectral baseline. Each stage writes its artifact into its own folder of the
run directory and is skipped when that artifact already exists, so an interrupted run continues
where it stopped (training itself resumes mid-way from its per-epoch resume file).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ppgedge.atomic import write_json_atomic, write_text_atomic
from ppgedge.data.format import DataFormat, Dataset, write_dataset
from ppgedge.data.splits import holdout
from ppgedge.data.synth import synthesize
from ppgedge.distill.run import distill
from ppgedge.evaluate.report import evaluate_model
from ppgedge.models.checkpoint import Checkpoint, load_checkpoint
from ppgedge.train.trainer import TrainConfig, TrainingObserver, train


@dataclass(frozen=True)
class MainJobConfig:
    subjects: int = 16
    minutes: float = 10.0
    seed: int = 0
    teacher: str = "resnet_medium"
    teacher_epochs: int = 20
    student: str = "resnet_small"
    method: str = "dkd"
    student_epochs: int = 20
    patience: int = 6


QUICK = MainJobConfig(
    subjects=5,
    minutes=3.0,
    teacher="resnet_tiny",
    teacher_epochs=2,
    student="resnet_micro",
    student_epochs=2,
    patience=2,
)


class MainJobObserver:
    def stage(self, name: str, message: str, seconds: float) -> None: ...

    def training(self, label: str) -> TrainingObserver:
        return TrainingObserver()


def _train_stage(obs: MainJobObserver, label: str, path: Path, fn) -> Checkpoint:
    """Reuse a finished artifact; otherwise train it with a progress display."""
    if path.exists():
        return load_checkpoint(path)
    tobs = obs.training(label)
    try:
        return fn(tobs)
    finally:
        getattr(tobs, "close", lambda: None)()


def run_main_job(
    out: str | Path,
    *,
    quick: bool = False,
    device: str = "auto",
    observer: MainJobObserver | None = None,
    config: MainJobConfig | None = None,
) -> dict[str, Any]:
    """Run (or continue) the chain in ``out``; return the evaluation and the report's path."""
    out = Path(out)
    cfg = config or (QUICK if quick else MainJobConfig())
    obs = observer or MainJobObserver()

    t0 = time.perf_counter()
    data_dir = out / "data" / "synthetic.ppgds"
    if not (data_dir / "meta.json").exists():
        write_dataset(synthesize(cfg.subjects, cfg.minutes, cfg.seed, DataFormat()), data_dir)
    ds = Dataset(data_dir)
    obs.stage(
        "data",
        f"{data_dir}: {len(ds):,} windows, {len(ds.subjects)} subjects",
        time.perf_counter() - t0,
    )
    split = holdout(ds.subjects, seed=cfg.seed)

    t0 = time.perf_counter()
    teacher_path = out / "teacher" / "teacher.pt"
    tcfg = TrainConfig(
        arch=cfg.teacher, epochs=cfg.teacher_epochs, patience=cfg.patience, seed=cfg.seed
    )
    teacher = _train_stage(
        obs,
        "teacher",
        teacher_path,
        lambda o: train(ds, split, teacher_path, tcfg, device=device, observer=o),
    )
    obs.stage(
        "teacher",
        f"{teacher_path}: {teacher.arch}, {teacher.metrics['parameters']:,} "
        f"params, val MAE {teacher.metrics['val_mae']:.2f} BPM",
        time.perf_counter() - t0,
    )

    t0 = time.perf_counter()
    student_path = out / "student" / "student.pt"
    scfg = TrainConfig(
        arch=cfg.student,
        epochs=cfg.student_epochs,
        patience=cfg.patience,
        seed=cfg.seed,
        augment=False,
    )
    student = _train_stage(
        obs,
        f"{cfg.method} student",
        student_path,
        lambda o: distill(
            teacher_path,
            ds,
            split,
            cfg.student,
            student_path,
            scfg,
            method=cfg.method,
            cache_dir=out / "cache",
            device=device,
            observer=o,
        ),
    )
    obs.stage(
        "distill",
        f"{student_path}: {student.arch} ({cfg.method}), "
        f"{student.metrics['parameters']:,} params, val MAE "
        f"{student.metrics['val_mae']:.2f} BPM",
        time.perf_counter() - t0,
    )

    t0 = time.perf_counter()
    evaluation = evaluate_model(teacher_path, data_dir, part="test", device="cpu")
    evaluation["models"] = {
        "spectral baseline": evaluation["models"]["spectral baseline"],
        f"teacher {teacher.arch}": evaluation["models"][teacher.arch],
        f"student {student.arch}": evaluate_model(
            student_path, data_dir, part="test", baseline=False
        )["models"][student.arch],
    }
    write_json_atomic(out / "eval" / "evaluation.json", evaluation)
    report = out / "report.md"
    write_text_atomic(report, _report_markdown(evaluation))
    obs.stage("eval", f"{report}: test subjects {', '.join(split.test)}", time.perf_counter() - t0)
    return {
        "evaluation": evaluation,
        "report": str(report),
        "next_commands": [
            f"ppgedge eval {student_path} {data_dir} --per-subject",
            f"ppgedge sweep {data_dir} --teacher {teacher_path} -o {out / 'sweep'}",
            f"ppgedge data info {data_dir}",
        ],
    }


def _report_markdown(evaluation: dict[str, Any]) -> str:
    models = evaluation["models"]
    names = list(models)
    lines = [
        "# ppgedge main job report",
        "",
        f"Evaluated on {evaluation['n_windows']} windows of {evaluation['windows']}.",
        "",
        "| activity | windows | " + " | ".join(f"{n} MAE (BPM)" for n in names) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in names) + " |",
    ]
    acts = models[names[0]]["per_activity"]
    for act in [*acts, None]:
        row = models[names[0]]["overall"] if act is None else acts[act]
        block = [
            models[n]["overall"] if act is None else models[n]["per_activity"][act] for n in names
        ]
        cells = [f"{m['mae']:.2f}" for m in block]
        lines.append(f"| {act or '**all**'} | {row['n']} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)
