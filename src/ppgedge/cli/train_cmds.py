"""``ppgedge models|train|ensemble|distill|sweep|eval``: parse, call, render."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ppgedge.cli.app import (
    CHANNELS,
    DEVICE,
    TIME_STRETCH,
    Device,
    DistillMethod,
    Engine,
    EvalPart,
    FinetuneMethod,
    TimeStretch,
    app,
    dataset_for,
)
from ppgedge.cli.render import (
    console,
    coverage_table,
    fmt_int,
    fmt_si,
    metrics_table,
    print_json,
    safe_text,
    status,
)
from ppgedge.distill.defaults import (
    DEFAULT_METHODS,
    DEFAULT_STUDENTS,
    TEACHER_LABELLED,
    check_mix,
)
from ppgedge.errors import PpgedgeError
from ppgedge.ownership import CHECKPOINT, SWEEP, claims


# --------------------------------------------------------------------------------- models
@app.command("models")
def models_cmd(
    channels: int = typer.Option(4, help="Input channels for the counts."),
    window_samples: int = typer.Option(256, help="Window length in samples for the counts."),
    sample_rate_hz: float = typer.Option(32.0, min=1.0, help="Sample rate for the counts."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the model zoo with parameters and MACs."""
    from rich.table import Table

    from ppgedge.models import count_macs, count_parameters, create_model, list_models
    from ppgedge.models.registry import format_kwargs

    rows = []
    for e in list_models():
        kwargs = {"in_channels": channels}
        kwargs |= format_kwargs(e.name, window_samples, sample_rate_hz)
        m = create_model(e.name, **kwargs)
        rows.append(
            {
                "name": e.name,
                "family": e.family,
                "description": e.description,
                "parameters": count_parameters(m),
                "macs": count_macs(m, channels, window_samples),
            }
        )
    if json_out:
        print_json("models", {"input": [channels, window_samples], "models": rows})
        return
    table = Table(title=f"model zoo (input {channels} x {window_samples})", title_justify="left")
    for col, just in (
        ("name", "left"),
        ("family", "left"),
        ("params", "right"),
        ("MACs", "right"),
        ("description", "left"),
    ):
        table.add_column(col, justify=just)
    for r in rows:
        table.add_row(
            r["name"], r["family"], fmt_int(r["parameters"]), fmt_si(r["macs"]), r["description"]
        )
    console.print(table)


# ---------------------------------------------------------------------------------- train
@app.command("train")
def train_cmd(
    dataset: Path = typer.Argument(..., help="Dataset directory."),
    model: str = typer.Option("resnet_base", "--model", "-m", help="Zoo model name."),
    out: Path = typer.Option(
        ..., "-o", "--out", help="Checkpoint file to write.", callback=claims(CHECKPOINT)
    ),
    split: str = typer.Option(
        "holdout", help="holdout, holdout:test=a,b;val=c, kfold:K:I or loso:SUBJECT."
    ),
    channels: str = CHANNELS,
    epochs: int = typer.Option(30, min=1),
    batch_size: int = typer.Option(64, min=1),
    lr: float = typer.Option(3e-3, help="Peak learning rate (one-cycle cosine)."),
    weight_decay: float = typer.Option(1e-2),
    patience: int = typer.Option(8, min=1, help="Early stopping patience, epochs."),
    seed: int = typer.Option(0),
    augment: bool = typer.Option(True, help="Accelerometer sign flips and light noise."),
    motion_aug: float = typer.Option(
        0.0, min=0.0, max=1.0, help="Share of windows given accelerometer-driven artifacts."
    ),
    time_stretch: TimeStretch = TIME_STRETCH,
    init: Path | None = typer.Option(
        None, help="Start from this checkpoint's weights (fine-tune)."
    ),
    device: Device = DEVICE,
    restart: bool = typer.Option(False, help="Ignore an interrupted run's resume file."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train a teacher or a from-scratch baseline."""
    from ppgedge.cli.progress import training_progress  # torch: imported only to train
    from ppgedge.data.format import Dataset
    from ppgedge.data.splits import parse_split
    from ppgedge.train.trainer import TrainConfig, train

    ds = Dataset(dataset)
    sp = parse_split(split, ds.subjects, seed=seed)
    cfg = TrainConfig(
        arch=model,
        channels=channels,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        patience=patience,
        augment=augment,
        motion_aug_p=motion_aug,
        time_stretch=time_stretch,
        seed=seed,
    )
    t0 = time.perf_counter()
    with training_progress(model, json_out) as observer:
        ckpt = train(
            ds, sp, out, cfg, init_from=init, device=device, observer=observer, restart=restart
        )
    m = ckpt.metrics
    if json_out:
        print_json("train", {"checkpoint": str(out), **ckpt.describe()})
        return
    status(
        "train",
        f"{out}: {ckpt.arch}, {fmt_int(m['parameters'])} params, {fmt_si(m['macs'])} "
        f"MACs, val MAE {m['val_mae']:.2f} BPM ({ckpt.decode}), best epoch {m['best_epoch']}",
        time.perf_counter() - t0,
    )
    console.print(f"next: [cyan]{safe_text(f'ppgedge eval {out} {dataset}')}[/cyan]")


@app.command("ensemble")
def ensemble_cmd(
    checkpoints: list[Path] = typer.Argument(..., help="Two or more checkpoints (one split)."),
    out: Path = typer.Option(
        ..., "-o", "--out", help="Ensemble checkpoint to write.", callback=claims(CHECKPOINT)
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="Dataset to pick the decoder on (validation subjects; default: the members' own).",
    ),
) -> None:
    """Average trained teachers into one (teacher-side only) model."""
    from ppgedge.evaluate.predict import choose_decoder
    from ppgedge.models.checkpoint import save_checkpoint
    from ppgedge.models.ensemble import ensemble_checkpoint

    t0 = time.perf_counter()
    ckpt = ensemble_checkpoint(list(checkpoints))
    ckpt.decode, ckpt.metrics["val_mae_by_decoder"] = choose_decoder(
        ckpt, dataset_for(checkpoints[0], data)
    )
    save_checkpoint(ckpt, out)
    status(
        "ensemble",
        f"{out}: {len(checkpoints)} members, {fmt_int(ckpt.metrics['parameters'])} params",
        time.perf_counter() - t0,
    )


# -------------------------------------------------------------------------------- distill
def _parse_hparams(items: list[str]) -> dict:
    import json

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PpgedgeError(f"--hp '{item}': use KEY=VALUE, e.g. --hp temperature=4")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@app.command("distill")
def distill_cmd(
    dataset: Path = typer.Argument(..., help="Dataset directory."),
    teacher: Path = typer.Option(
        ...,
        "--teacher",
        "-t",
        help="Teacher: ppgedge checkpoint, TorchScript, ONNX or Keras/SavedModel.",
    ),
    student: str = typer.Option(..., "--student", "-s", help="Zoo model name of the student."),
    out: Path = typer.Option(
        ..., "-o", "--out", help="Student checkpoint to write.", callback=claims(CHECKPOINT)
    ),
    method: DistillMethod = typer.Option("dkd", help="Distillation method."),
    hp: list[str] = typer.Option([], "--hp", help="Method hyper-parameter KEY=VALUE (repeat)."),
    assistant: str = typer.Option("resnet_medium", help="progressive: the teaching assistant."),
    assistant_method: FinetuneMethod = typer.Option(
        "dkd", help="progressive: method for both steps."
    ),
    split: str = typer.Option("holdout", help="holdout, kfold:K:I or loso:SUBJECT."),
    channels: str = typer.Option("all", help="Student channels (a subset: cross-modal)."),
    epochs: int = typer.Option(30, min=1),
    batch_size: int = typer.Option(64, min=1),
    lr: float = typer.Option(3e-3),
    patience: int = typer.Option(8, min=1),
    seed: int = typer.Option(0),
    augment: bool = typer.Option(False, help="Augment inputs (the teacher then runs online)."),
    mix: float = typer.Option(
        0.0,
        help="With --augment: half the windows get up to this share (< 0.5) of another window "
        "mixed in, the teacher labelling the mix (function matching; `ppgedge run` uses 0.4).",
    ),
    motion_aug: float = typer.Option(
        0.0,
        min=0.0,
        max=1.0,
        help="With --augment: share of windows given accelerometer-driven artifacts, the "
        "teacher labelling each corrupted window.",
    ),
    time_stretch: TimeStretch = TIME_STRETCH,
    cache_dir: Path | None = typer.Option(
        None, help="Teacher-output cache (default $PPGEDGE_CACHE or ~/.cache/ppgedge)."
    ),
    device: Device = DEVICE,
    restart: bool = typer.Option(False, help="Ignore an interrupted run's resume file."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Distil a teacher into a small student."""
    check_mix(mix, "--mix")
    for knob, flag, value in (("mix", "--mix", mix), ("motion_aug_p", "--motion-aug", motion_aug)):
        if value and not augment:
            raise PpgedgeError(
                f"{flag} {value:g} {TEACHER_LABELLED[knob]} augmented windows: add --augment, "
                f"or {flag} 0"
            )
    from ppgedge.cli.progress import training_progress  # torch: imported only to train
    from ppgedge.data.format import Dataset
    from ppgedge.data.splits import parse_split
    from ppgedge.distill.run import distill
    from ppgedge.train.trainer import TrainConfig

    ds = Dataset(dataset)
    sp = parse_split(split, ds.subjects, seed=seed)
    cfg = TrainConfig(
        arch=student,
        channels=channels,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        patience=patience,
        augment=augment,
        time_stretch=time_stretch,
        seed=seed,
        mix_max=mix,
        motion_aug_p=motion_aug,
    )
    t0 = time.perf_counter()
    with training_progress(f"{method} {student}", json_out) as observer:
        ckpt = distill(
            teacher,
            ds,
            sp,
            student,
            out,
            cfg,
            method=method,
            hparams=_parse_hparams(hp),
            assistant=assistant,
            assistant_method=assistant_method,
            cache_dir=cache_dir,
            device=device,
            observer=observer,
            restart=restart,
        )
    if json_out:
        print_json("distill", {"checkpoint": str(out), **ckpt.describe()})
        return
    m = ckpt.metrics
    status(
        "distill",
        f"{out}: {ckpt.arch} ({ckpt.training['method']}), "
        f"{fmt_int(m['parameters'])} params, val MAE {m['val_mae']:.2f} BPM",
        time.perf_counter() - t0,
    )
    console.print(f"next: [cyan]{safe_text(f'ppgedge eval {out} {dataset}')}[/cyan]")


@app.command("sweep")
def sweep_cmd(
    dataset: Path = typer.Argument(..., help="Dataset directory."),
    teacher: Path = typer.Option(..., "--teacher", "-t", help="Teacher model file."),
    out: Path = typer.Option(
        Path("runs/sweep"), "-o", "--out", help="Sweep directory.", callback=claims(SWEEP)
    ),
    students: str = typer.Option(",".join(DEFAULT_STUDENTS), help="Comma-separated zoo names."),
    methods: str = typer.Option(
        ",".join(DEFAULT_METHODS),
        help="Comma-separated: scratch, hard, soft, dkd, feature, progressive.",
    ),
    seeds: str = typer.Option("0,1,2", help="Comma-separated seeds."),
    split: str | None = typer.Option(
        None, help="holdout (default), kfold:K:I or loso:SUBJECT; not with --folds."
    ),
    folds: int | None = typer.Option(
        None,
        min=2,
        help="Subject-wise cross-validation: every cell runs on each of K folds "
        "(validation subjects inside each training part).",
    ),
    engine: Engine = typer.Option("local", help="local (this process) or ray (one task per cell)."),
    ray_address: str | None = typer.Option(
        None,
        help="Ray cluster to join: auto (the one running here) or HOST:PORT; "
        "none starts a local Ray.",
    ),
    cpus_per_run: int = typer.Option(
        1, min=1, help="CPUs (and torch threads) per cell, on either engine."
    ),
    gpus_per_run: float = typer.Option(0.0, min=0.0, help="GPUs per cell on Ray (may be < 1)."),
    retries: int = typer.Option(2, min=0, help="Retries of a failed cell (or dead worker)."),
    epochs: int = typer.Option(20, min=1),
    patience: int = typer.Option(6, min=1),
    cache_dir: Path | None = typer.Option(None, help="Teacher-output cache directory."),
    device: Device = DEVICE,
) -> None:
    """Sweep student sizes x methods x seeds (x subject folds); fit a scaling law."""
    from ppgedge.data.format import Dataset
    from ppgedge.data.splits import parse_split
    from ppgedge.distill.sweep import run_sweep
    from ppgedge.train.trainer import TrainConfig

    def _list(text: str) -> list[str]:
        return [t.strip() for t in text.split(",") if t.strip()]

    try:
        seed_list = [int(s) for s in _list(seeds)]
    except ValueError:
        raise PpgedgeError(f"--seeds '{seeds}': use integers like 0,1,2") from None
    if folds and split:
        raise PpgedgeError("--folds and --split both given: --folds makes its own splits")
    if ray_address and engine != "ray":
        raise PpgedgeError("--ray-address needs --engine ray")
    ds = Dataset(dataset)
    sp = None if folds else parse_split(split or "holdout", ds.subjects, seed=0)
    cfg = TrainConfig(epochs=epochs, patience=patience, augment=False)

    def on_run(row: dict, skipped: bool) -> None:
        what = "done before" if skipped else f"{row['seconds']:.0f}s"
        tracked = row.get("test_mae_tracked")
        console.print(
            f"  {safe_text(format(row['key'], '<36'))} {row['parameters']:>9,} params  "
            f"test MAE {row['test_mae']:6.2f}"
            + (f" (tracked {tracked:.2f})" if tracked is not None else "")
            + f"  [dim]{what}[/dim]"
        )

    def on_fail(rec: dict) -> None:
        console.print(
            f"  [red]{safe_text(format(rec['key'], '<36'))} failed[/red] "
            f"({rec['attempts']} attempt(s)): {safe_text(rec['error'])}",
            highlight=False,
        )

    t0 = time.perf_counter()
    doc = run_sweep(
        teacher,
        ds,
        sp,
        out,
        cfg,
        students=_list(students),
        methods=_list(methods),
        seeds=seed_list,
        folds=folds,
        cache_dir=cache_dir,
        device=device,
        engine=engine,
        ray_address=ray_address,
        cpus_per_run=cpus_per_run,
        gpus_per_run=gpus_per_run,
        retries=retries,
        on_run=on_run,
        on_fail=on_fail,
    )
    status(
        "sweep",
        f"{out}: {doc['runs']} of {doc['cells']} cells on {engine} "
        "(results.csv, summary.json, sweep.md, sweep.png)",
        time.perf_counter() - t0,
    )
    console.print((out / "sweep.md").read_text(), markup=False, highlight=False)
    if doc.get("teacher_saw_test_subjects"):
        console.print(
            "[yellow]warning:[/yellow] the teacher was trained on test subjects of "
            f"{', '.join(doc['teacher_saw_test_subjects'])}: see sweep.md"
        )
    if doc["failed"]:
        console.print(
            f"[red]{len(doc['failed'])} cell(s) failed[/red]: listed in {out}/summary.json; "
            "rerun the same command to retry them"
        )
        raise typer.Exit(1)


# ----------------------------------------------------------------------------------- eval
@app.command("eval")
def eval_cmd(
    checkpoint: Path = typer.Argument(
        ..., help="Checkpoint, int8 artifact (.int8.pt, fake-quant) or .tflite (TFLite Micro)."
    ),
    dataset: Path = typer.Argument(..., help="Dataset directory."),
    part: EvalPart = typer.Option(
        "auto",
        help="auto: the model's test subjects when trained on this dataset.",
    ),
    baseline: bool = typer.Option(True, help="Also score the spectral baseline."),
    per_subject: bool = typer.Option(False, help="Add a per-subject table."),
    device: Device = DEVICE,
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """MAE, RMSE, within-5-BPM per activity and subject."""
    from ppgedge.export.evaluate_deployed import evaluate_any

    result = evaluate_any(checkpoint, dataset, part=part, baseline=baseline, device=device)
    if json_out:
        print_json("eval", result)
        return
    _render_eval(result, per_subject)


def _render_eval(result: dict, per_subject: bool) -> None:
    models = result["models"]
    console.print(f"evaluated on {result['n_windows']} windows: {safe_text(result['windows'])}")
    for note in result.get("notes") or ():
        console.print(f"note: {safe_text(note)}")
    overall = {n: {"all": r["overall"]} for n, r in models.items()}
    console.print(metrics_table("overall", overall, "set"))
    tr = result.get("tracking")
    if tr:
        console.print(
            f"tracked: skipped ({safe_text(tr['skipped'])})"
            if "skipped" in tr
            else f"tracked: {tr['sequences']} sequences, {tr['gap_resets']} resets at gaps, "
            f"+/-{tr['half_width']} BPM per hop, weight {tr['weight']:g}"
            + ("" if tr.get("jump") is None else f", re-acquire cost {tr['jump']:g}")
            + ("" if tr.get("label_power") is None else ", label prior divided out")
            + f", {tr['arithmetic']}; fitted on {tr.get('fitted_on', 'float')} validation "
            f"outputs, which chose {safe_text(tr.get('val_decoder'))}"
        )
    console.print(
        metrics_table("per activity", {n: r["per_activity"] for n, r in models.items()}, "activity")
    )
    cov = result.get("coverage")
    if cov:
        console.print(coverage_table(cov))
    if per_subject:
        console.print(
            metrics_table(
                "per subject", {n: r["per_subject"] for n, r in models.items()}, "subject"
            )
        )
