"""Typer application: parse, call one stage function, render with Rich. No logic lives here."""

from __future__ import annotations

import functools
import inspect
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from ppgedge import __version__
from ppgedge.cli.render import (
    RichTrainingObserver,
    console,
    err_console,
    fmt_int,
    fmt_si,
    metrics_table,
    print_json,
    safe_text,
    status,
)
from ppgedge.distill.defaults import DEFAULT_METHODS, DEFAULT_STUDENTS
from ppgedge.errors import PpgedgeError
from ppgedge.ownership import CHECKPOINT, DATASET, EXPORT, RUN, SWEEP, claim, claims

app = typer.Typer(
    name="ppgedge",
    help="Distil a large PPG heart-rate model into a small int8 model for a Cortex-M wearable.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
data_app = typer.Typer(help="Create, import and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _version(value: bool) -> None:
    if value:
        console.print(f"ppgedge {__version__}")
        raise typer.Exit()


def _option_name(param: inspect.Parameter) -> str:
    decls = getattr(param.default, "param_decls", None) or ()
    long = [d for d in decls if d.startswith("--")]
    return max(long, key=len) if long else "--" + param.name.replace("_", "-")


def _finite_floats(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` refusing NaN and infinity in any float argument, naming the option."""
    sig = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for name, value in sig.bind_partial(*args, **kwargs).arguments.items():
            values = value if isinstance(value, list | tuple) else [value]
            for v in values:
                if isinstance(v, float) and not math.isfinite(v):
                    raise PpgedgeError(
                        f"{_option_name(sig.parameters[name])} {v}: must be a finite number"
                    )
        return func(*args, **kwargs)

    return wrapper


def refuse_non_finite(typer_app: typer.Typer) -> None:
    """Give every command of ``typer_app`` (and its sub-apps) the finite-float check: Python's
    ``float()`` accepts ``nan``, ``inf`` and ``1e999``, and one of them in a learning rate or a
    sample rate poisons a whole run, or fails long after it started, instead of failing at the
    door. Called once, after every command is registered (``ppgedge.cli``), so a float option
    added later is covered without anyone remembering to."""
    for info in typer_app.registered_commands:
        if info.callback is not None and not hasattr(info.callback, "__wrapped__"):
            info.callback = _finite_floats(info.callback)
    cb = typer_app.registered_callback
    if cb is not None and cb.callback is not None and not hasattr(cb.callback, "__wrapped__"):
        cb.callback = _finite_floats(cb.callback)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            refuse_non_finite(group.typer_instance)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Distil, compress and deploy PPG heart-rate models to Cortex-M wearables."""


# ----------------------------------------------------------------------------------- data
RATE = typer.Option(32.0, "--rate", help="Common sample rate, Hz.")
WINDOW = typer.Option(8.0, "--window", help="Window length, s.")
HOP = typer.Option(2.0, "--hop", help="Hop between windows, s.")
CHANNELS = typer.Option("all", "--channels", help="all, ppg, acc, or a list like ppg,acc_x.")


def _format(rate: float, window: float, hop: float, channels: str):
    from ppgedge.data.format import DataFormat, resolve_channels

    if rate <= 0 or window <= 0 or hop <= 0:
        raise PpgedgeError("--rate, --window and --hop must be positive")
    return DataFormat(rate, window, hop, resolve_channels(channels))


def _dataset_line(path: Path, seconds: float) -> None:
    from ppgedge.data.format import Dataset

    ds = Dataset(path)
    s = ds.summary()
    status(
        "data",
        f"{path}: {fmt_int(s['n_windows'])} windows, {s['n_subjects']} subjects, "
        f"HR {s['hr_bpm']['min']:.0f}-{s['hr_bpm']['max']:.0f} BPM",
        seconds,
    )


@data_app.command("synth")
def data_synth(
    out: Path = typer.Option(
        ..., "-o", "--out", help="Dataset directory to write.", callback=claims(DATASET)
    ),
    subjects: int = typer.Option(16, help="Number of synthetic subjects."),
    minutes: float = typer.Option(10.0, help="Minutes of recording per subject."),
    seed: int = typer.Option(0, help="Random seed (same seed, same data)."),
    rate: float = RATE,
    window: float = WINDOW,
    hop: float = HOP,
    channels: str = CHANNELS,
) -> None:
    """Generate the seeded synthetic PPG + ACC dataset."""
    from ppgedge.data.format import write_dataset
    from ppgedge.data.synth import synthesize

    if subjects < 1 or minutes <= 0:
        raise PpgedgeError("--subjects must be >= 1 and --minutes > 0")
    t0 = time.perf_counter()
    write_dataset(synthesize(subjects, minutes, seed, _format(rate, window, hop, channels)), out)
    _dataset_line(out, time.perf_counter() - t0)


@data_app.command("import")
def data_import(
    kind: str = typer.Argument(..., help="spc2015, dalia, bami or generic."),
    path: Path = typer.Argument(..., help="File or folder to import."),
    out: Path = typer.Option(
        ..., "-o", "--out", help="Dataset directory to write.", callback=claims(DATASET)
    ),
    subset: str | None = typer.Option(None, help="spc2015: all (default), train or test."),
    subject_from: str | None = typer.Option(None, help="generic: stem (default) or prefix."),
    acc_scale: float | None = typer.Option(None, help="bami: g per accelerometer count."),
    drop_out_of_range: bool = typer.Option(False, help="Drop windows labelled outside 30-209 BPM."),
    rate: float = RATE,
    window: float = WINDOW,
    hop: float = HOP,
    channels: str = CHANNELS,
) -> None:
    """Import SPC 2015, DaLiA, BAMI or CSV/NPZ recordings."""
    from ppgedge.data.format import write_dataset
    from ppgedge.data.importers import import_dataset

    t0 = time.perf_counter()
    given = {"subset": subset, "subject_from": subject_from, "acc_scale": acc_scale}
    options = {k: v for k, v in given.items() if v is not None}
    data = import_dataset(
        kind,
        path,
        _format(rate, window, hop, channels),
        drop_out_of_range=drop_out_of_range,
        **options,
    )
    write_dataset(data, out)
    _dataset_line(out, time.perf_counter() - t0)


@data_app.command("info")
def data_info(
    dataset: Path = typer.Argument(..., help="Dataset directory."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Summarise a dataset: subjects, windows, HR, activities."""
    from rich.table import Table

    from ppgedge.data.format import Dataset

    s = Dataset(dataset).summary()
    if json_out:
        print_json("dataset-info", s)
        return
    f = s["format"]
    console.print(
        f"[bold]{safe_text(s['path'])}[/bold]  source [cyan]{safe_text(s['source'])}[/cyan]  "
        f"{f['sample_rate_hz']:g} Hz, {f['window_s']:g} s windows, {f['hop_s']:g} s hop, "
        f"channels {safe_text(', '.join(f['channels']))}"
    )
    hr = s["hr_bpm"]
    console.print(
        f"{fmt_int(s['n_windows'])} windows, {s['n_subjects']} subjects, "
        f"{s['n_recordings']} recordings, ~{s['hours']:.2f} h; HR {hr['min']:.1f}-"
        f"{hr['max']:.1f} BPM (mean {hr['mean']:.1f}, sd {hr['std']:.1f})"
    )
    for title, key in (("activity", "windows_per_activity"), ("subject", "windows_per_subject")):
        table = Table(title=f"windows per {title}", title_justify="left")
        table.add_column(title)
        table.add_column("windows", justify="right")
        for k, v in s[key].items():
            table.add_row(safe_text(k), fmt_int(v))
        console.print(table)


# --------------------------------------------------------------------------------- models
@app.command("models")
def models_cmd(
    channels: int = typer.Option(4, help="Input channels for the counts."),
    window_samples: int = typer.Option(256, help="Window length in samples for the counts."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the model zoo with parameters and MACs."""
    from rich.table import Table

    from ppgedge.models import count_macs, count_parameters, create_model, list_models

    rows = []
    for e in list_models():
        kwargs = {"in_channels": channels}
        if e.family == "mlp":
            kwargs["window_samples"] = window_samples
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
    init: Path | None = typer.Option(
        None, help="Start from this checkpoint's weights (fine-tune)."
    ),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    restart: bool = typer.Option(False, help="Ignore an interrupted run's resume file."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train a teacher or a from-scratch baseline."""
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
        seed=seed,
    )
    observer = RichTrainingObserver(model) if not json_out else None
    t0 = time.perf_counter()
    try:
        ckpt = train(
            ds, sp, out, cfg, init_from=init, device=device, observer=observer, restart=restart
        )
    finally:
        if observer:
            observer.close()
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
        ckpt, _dataset_for(checkpoints[0], data)
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
    method: str = typer.Option("dkd", help="hard, soft, dkd, feature or progressive."),
    hp: list[str] = typer.Option([], "--hp", help="Method hyper-parameter KEY=VALUE (repeat)."),
    assistant: str = typer.Option("resnet_medium", help="progressive: the teaching assistant."),
    assistant_method: str = typer.Option("dkd", help="progressive: method for both steps."),
    split: str = typer.Option("holdout", help="holdout, kfold:K:I or loso:SUBJECT."),
    channels: str = typer.Option("all", help="Student channels (a subset: cross-modal)."),
    epochs: int = typer.Option(30, min=1),
    batch_size: int = typer.Option(64, min=1),
    lr: float = typer.Option(3e-3),
    patience: int = typer.Option(8, min=1),
    seed: int = typer.Option(0),
    augment: bool = typer.Option(False, help="Augment inputs (the teacher then runs online)."),
    cache_dir: Path | None = typer.Option(
        None, help="Teacher-output cache (default $PPGEDGE_CACHE or ~/.cache/ppgedge)."
    ),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    restart: bool = typer.Option(False, help="Ignore an interrupted run's resume file."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Distil a teacher into a small student."""
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
        seed=seed,
    )
    observer = RichTrainingObserver(f"{method} {student}") if not json_out else None
    t0 = time.perf_counter()
    try:
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
    finally:
        if observer:
            observer.close()
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
    split: str = typer.Option("holdout", help="holdout, kfold:K:I or loso:SUBJECT."),
    epochs: int = typer.Option(20, min=1),
    patience: int = typer.Option(6, min=1),
    cache_dir: Path | None = typer.Option(None, help="Teacher-output cache directory."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
) -> None:
    """Sweep student sizes x methods x seeds; fit a scaling law."""
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
    ds = Dataset(dataset)
    sp = parse_split(split, ds.subjects, seed=0)
    cfg = TrainConfig(epochs=epochs, patience=patience, augment=False)

    def on_run(row: dict, skipped: bool) -> None:
        what = "done before" if skipped else f"{row['seconds']:.0f}s"
        console.print(
            f"  {safe_text(format(row['key'], '<32'))} {row['parameters']:>9,} params  "
            f"test MAE {row['test_mae']:6.2f}  [dim]{what}[/dim]"
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
        cache_dir=cache_dir,
        device=device,
        on_run=on_run,
    )
    status(
        "sweep",
        f"{out}: {doc['runs']} runs (results.csv, summary.json, sweep.md, sweep.png)",
        time.perf_counter() - t0,
    )
    console.print((out / "sweep.md").read_text(), markup=False, highlight=False)


# ------------------------------------------------------------------------------- compress
def _dataset_for(checkpoint: Path, dataset: Path | None):
    """The dataset a checkpoint was trained on, unless another is named."""
    from ppgedge.data.format import Dataset
    from ppgedge.models.checkpoint import load_checkpoint

    if dataset is not None:
        return Dataset(dataset)
    recorded = load_checkpoint(checkpoint).training.get("dataset")
    if not recorded or not Path(recorded).exists():
        raise PpgedgeError(
            f"{checkpoint}: its training dataset is not recorded or gone: pass --data DATASET"
        )
    return Dataset(recorded)


@app.command("prune")
def prune_cmd(
    checkpoint: Path = typer.Argument(..., help="Float checkpoint to prune."),
    to: str = typer.Option(
        ..., "--to", help="Budget: 30000 / 30k params, 2M macs, 40kb flash, or 50%."
    ),
    data: Path | None = typer.Option(None, "--data", help="Dataset (default: the model's own)."),
    out: Path | None = typer.Option(
        None,
        "-o",
        "--out",
        help="Pruned checkpoint (default NAME.pruned.pt).",
        callback=claims(CHECKPOINT),
    ),
    criterion: str = typer.Option("l1", help="l1, l2 or taylor."),
    steps: int = typer.Option(4, min=1, help="Iterative pruning steps."),
    finetune_epochs: int = typer.Option(3, min=0, help="Fine-tuning epochs between steps."),
    final_epochs: int = typer.Option(6, min=0, help="Fine-tuning epochs after the last step."),
    round_to: int = typer.Option(4, help="Channel counts are multiples of this (4 or 8)."),
    teacher: Path | None = typer.Option(None, help="Fine-tune with distillation from it."),
    method: str = typer.Option("dkd", help="Distillation method with --teacher."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Remove whole channels until the model fits a budget."""
    from rich.table import Table

    from ppgedge.compress.prune import parse_budget, prune
    from ppgedge.data.splits import Split
    from ppgedge.models.checkpoint import load_checkpoint

    ds = _dataset_for(checkpoint, data)
    split_d = load_checkpoint(checkpoint).training.get("split")
    if not split_d:
        raise PpgedgeError(f"{checkpoint}: no training split recorded; train it with ppgedge")
    split = Split(
        split_d["name"], tuple(split_d["train"]), tuple(split_d["val"]), tuple(split_d["test"])
    )
    out = out or claim(checkpoint.with_name(checkpoint.stem + ".pruned.pt"), CHECKPOINT)
    t0 = time.perf_counter()
    result = prune(
        checkpoint,
        ds,
        split,
        out,
        parse_budget(to),
        criterion=criterion,
        steps=steps,
        finetune_epochs=finetune_epochs,
        final_epochs=final_epochs,
        round_to=round_to,
        teacher=teacher,
        method=method,
        device=device,
    )
    if json_out:
        print_json(
            "prune",
            {
                "checkpoint": None if result.nothing_to_do else str(out),
                "nothing_to_do": result.nothing_to_do,
                "steps": result.steps,
            },
        )
        return
    if result.nothing_to_do:
        status(
            "prune",
            f"nothing to do: {checkpoint} already meets "
            f"{result.budget.describe() if result.budget else to}",
        )
        return
    table = Table(title="pruning steps", title_justify="left")
    for col in ("step", "params", "MACs", "int8 flash", "val MAE (pruned)", "val MAE (tuned)"):
        table.add_column(col, justify="right")
    for r in result.steps:
        table.add_row(
            str(r["step"]),
            fmt_int(r["parameters"]),
            fmt_si(r["macs"]),
            f"{r['flash_bytes'] / 1024:.1f} KB",
            f"{r.get('val_mae_pruned', r['val_mae']):.2f}",
            f"{r['val_mae']:.2f}",
        )
    console.print(table)
    status(
        "prune",
        f"{out}: {fmt_int(result.steps[-1]['parameters'])} params",
        time.perf_counter() - t0,
    )
    console.print(f"next: [cyan]{safe_text(f'ppgedge qat {out}')}[/cyan]")


def _quant_summary(kind: str, result, t0: float, json_out: bool) -> None:
    if json_out:
        print_json(kind, {"artifact": str(result.path), "metrics": result.metrics})
        return
    m = result.metrics
    parts = [
        f"float val MAE {m['float_val_mae']:.2f}",
        f"fake-quant {m['fakequant_val_mae']:.2f} ({m['fakequant_gap_bpm']:+.2f})",
    ]
    if "tflm_val_mae" in m:
        parts.append(f"TFLite Micro int8 {m['tflm_val_mae']:.2f} ({m['tflm_gap_bpm']:+.2f})")
    status(kind, f"{result.path}: " + ", ".join(parts) + " BPM", time.perf_counter() - t0)


@app.command("qat")
def qat_cmd(
    checkpoint: Path = typer.Argument(..., help="Float checkpoint (e.g. pruned student)."),
    data: Path | None = typer.Option(None, "--data", help="Dataset (default: the model's own)."),
    out: Path | None = typer.Option(
        None,
        "-o",
        "--out",
        help="Artifact (default NAME.qat.int8.pt).",
        callback=claims(CHECKPOINT),
    ),
    epochs: int = typer.Option(5, min=1),
    lr: float = typer.Option(1e-4),
    teacher: Path | None = typer.Option(None, help="Add a distillation loss from it."),
    method: str = typer.Option("dkd", help="hard, soft or dkd with --teacher."),
    tflm: bool = typer.Option(True, help="Also measure the int8 model in TFLite Micro."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Quantisation-aware training to int8 (the scales export keeps)."""
    from ppgedge.compress.quantize import default_artifact_path, qat

    ds = _dataset_for(checkpoint, data)
    t0 = time.perf_counter()
    observer = RichTrainingObserver("qat") if not json_out else None
    try:
        result = qat(
            checkpoint,
            ds,
            None,
            out or default_artifact_path(checkpoint, "qat"),
            epochs=epochs,
            lr=lr,
            teacher=teacher,
            method=method,
            device=device,
            observer=observer,
            measure_tflm=tflm,
        )
    finally:
        if observer:
            observer.close()
    _quant_summary("qat", result, t0, json_out)


@app.command("quantize")
def quantize_cmd(
    checkpoint: Path = typer.Argument(..., help="Float checkpoint."),
    ptq: bool = typer.Option(..., "--ptq", help="Post-training calibration only."),
    data: Path | None = typer.Option(None, "--data", help="Dataset (default: the model's own)."),
    windows: int = typer.Option(512, min=1, help="Representative windows to calibrate on."),
    part: str = typer.Option("train", help="Split part to draw them from: train, val, all."),
    out: Path | None = typer.Option(
        None,
        "-o",
        "--out",
        help="Artifact (default NAME.ptq.int8.pt).",
        callback=claims(CHECKPOINT),
    ),
    tflm: bool = typer.Option(True, help="Also measure the int8 model in TFLite Micro."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Post-training int8 calibration (the baseline QAT must beat)."""
    from ppgedge.compress.quantize import default_artifact_path
    from ppgedge.compress.quantize import ptq as run_ptq

    ds = _dataset_for(checkpoint, data)
    t0 = time.perf_counter()
    result = run_ptq(
        checkpoint,
        ds,
        out or default_artifact_path(checkpoint, "ptq"),
        n_windows=windows,
        part=part,
        measure_tflm=tflm,
    )
    _quant_summary("quantize", result, t0, json_out)


# --------------------------------------------------------------------------------- export
@app.command("export")
def export_cmd(
    model: Path = typer.Argument(..., help="Int8 artifact (qat/quantize) or float checkpoint."),
    fmt: str = typer.Option("all", "--format", help="tflite, tflm, onnx (comma list) or all."),
    out: Path = typer.Option(
        Path("export"), "-o", "--out", help="Output directory.", callback=claims(EXPORT)
    ),
    name: str | None = typer.Option(None, help="Model name (file names, C identifiers)."),
    data: Path | None = typer.Option(
        None, "--data", help="Calibration data for a float checkpoint: dataset or .npy windows."
    ),
    windows: int = typer.Option(512, min=1, help="Calibration windows (float checkpoint)."),
    part: str = typer.Option("train", help="Split part to calibrate on: train, val, all."),
    json_out: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Full-int8 TFLite, TFLite Micro firmware bundle and ONNX, each checked."""
    from ppgedge.export.run import export, parse_formats

    t0 = time.perf_counter()
    result = export(
        model,
        out,
        formats=parse_formats(fmt),
        name=name,
        data=data,
        calib_windows=windows,
        calib_part=part,
        on_stage=None if json_out else status,
    )
    if json_out:
        print_json("export", result.manifest)
        return
    _render_export(result, time.perf_counter() - t0)


def _render_export(result, seconds: float) -> None:
    from rich.table import Table

    table = Table(title=f"export {safe_text(result.name)} ({seconds:.1f} s)")
    for col in ("format", "file", "size"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for key, path in result.files.items():
        size = f"{path.stat().st_size:,} B" if path.is_file() else "folder"
        table.add_row(safe_text(key), safe_text(path), size)
    console.print(table)
    if result.rules is not None:
        q_in, q_out = result.rules.input, result.rules.output
        console.print(
            f"int8 in {q_in['shape']} scale {float(q_in['scale'][0]):.4g} zp "
            f"{int(q_in['zero_point'][0])}, out {q_out['shape']}; ops: "
            + ", ".join(sorted(set(result.rules.ops)))
        )
    tfl = result.files.get("tflite")
    console.print("next:")
    if tfl is not None:
        for cmd in (
            f"ppgedge verify {result.out_dir} DATASET",
            f"ppgedge profile {tfl} --target nrf52840",
            f"ppgedge check {tfl} --target nrf52840",
        ):
            console.print(f"  [cyan]{safe_text(cmd)}[/cyan]")


@app.command("verify")
def verify_cmd(
    model: Path = typer.Argument(..., help="Export directory, .tflite, or int8 artifact."),
    dataset: Path = typer.Argument(..., help="Dataset directory."),
    part: str = typer.Option("auto", help="auto (the model's test subjects), val, test or all."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Run the int8 model in TFLite Micro and LiteRT; compare with PyTorch. Exit 1 on a miss."""
    from ppgedge.data.format import Dataset
    from ppgedge.export.verify import verify

    report = verify(model, Dataset(dataset), part=part)
    if json_out:
        print_json("verify", report.to_dict())
    else:
        _render_verify(report)
    if not report.ok:
        raise typer.Exit(1)


def _render_verify(r) -> None:
    from rich.table import Table

    console.print(
        f"verified {safe_text(r.tflite)} on {r.windows:,} windows: {safe_text(r.part)}; "
        f"decoder {safe_text(r.decoder)}"
    )
    table = Table(title="int8 model, runtime by runtime")
    for col in ("model", "MAE (BPM)", "agreement with TFLM"):
        table.add_column(col, justify="left" if col == "model" else "right")
    table.add_row("TFLite Micro (device arithmetic)", f"{r.mae_tflm:.3f}", "-")
    table.add_row("LiteRT", f"{r.mae_litert:.3f}", f"{r.argmax_agreement_litert:.1%} (argmax)")
    if r.mae_pytorch is not None:
        table.add_row(
            "PyTorch graph, integer arithmetic",
            "",
            "not computed (see note)"
            if r.argmax_agreement_pytorch is None
            else f"{r.argmax_agreement_pytorch:.1%} decoded, max "
            f"{r.max_step_diff_pytorch_vs_tflm} int8 step(s)",
        )
        table.add_row(
            "PyTorch fake-quant (what QAT evaluates)",
            f"{r.mae_pytorch:.3f}",
            f"{r.argmax_agreement_fake_quant:.1%} decoded, {r.within_1bpm_fake_quant:.1%} "
            f"within 1 BPM, {r.raw_argmax_agreement_fake_quant:.1%} raw argmax",
        )
        table.add_row("PyTorch float", f"{r.mae_float:.3f}", "")
    console.print(table)
    console.print(
        f"LiteRT vs TFLite Micro: max {r.max_step_diff_tflite_vs_tflm} int8 step(s), "
        f"{r.windows_differing:.1%} of windows differ somewhere"
    )
    for check, ok in r.checks.items():
        mark = "[green]pass[/green]" if ok else "[red]FAIL[/red]"
        console.print(f"  {mark} {safe_text(check)}")
    for note in r.notes:
        console.print(f"  note: {safe_text(note)}")


# ----------------------------------------------------------------------------------- eval
@app.command("eval")
def eval_cmd(
    checkpoint: Path = typer.Argument(..., help="Checkpoint to evaluate."),
    dataset: Path = typer.Argument(..., help="Dataset directory."),
    part: str = typer.Option(
        "auto",
        help="auto (the model's test subjects when trained on this "
        "dataset), train, val, test or all.",
    ),
    baseline: bool = typer.Option(True, help="Also score the spectral baseline."),
    per_subject: bool = typer.Option(False, help="Add a per-subject table."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """MAE, RMSE, within-5-BPM per activity and subject."""
    from ppgedge.evaluate.report import evaluate_model

    result = evaluate_model(checkpoint, dataset, part=part, baseline=baseline, device=device)
    if json_out:
        print_json("eval", result)
        return
    _render_eval(result, per_subject)


def _render_eval(result: dict, per_subject: bool) -> None:
    models = result["models"]
    console.print(f"evaluated on {result['n_windows']} windows: {safe_text(result['windows'])}")
    overall = {n: {"all": r["overall"]} for n, r in models.items()}
    console.print(metrics_table("overall", overall, "set"))
    console.print(
        metrics_table("per activity", {n: r["per_activity"] for n, r in models.items()}, "activity")
    )
    if per_subject:
        console.print(
            metrics_table(
                "per subject", {n: r["per_subject"] for n, r in models.items()}, "subject"
            )
        )


# ------------------------------------------------------------------------------------ run
STAGE_NAMES = "data, teacher, distill, prune, qat, export, verify, profile, check"


@app.command("run")
def run_cmd(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="ppgedge.toml (default: built-in synthetic config)."
    ),
    out: Path | None = typer.Option(
        None,
        "-o",
        "--out",
        help="Run directory (overrides config).",
        callback=claims(RUN, "--out"),
    ),
    from_stage: str | None = typer.Option(None, "--from", help=f"Rerun from: {STAGE_NAMES}."),
    quick: bool = typer.Option(False, help="Tiny data and epochs: a smoke test of the chain."),
    device: str | None = typer.Option(None, help="auto, cpu or cuda (overrides config)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    restart: bool = typer.Option(
        False, help="Discard interrupted training's resume files and train from epoch 0."
    ),
) -> None:
    """Teacher to firmware bundle: every stage, resumable; exit code as `check`."""
    from ppgedge.pipeline import load_run_config, quick_config, run_pipeline
    from ppgedge.pipeline.config import with_values
    from ppgedge.pipeline.run import RunObserver

    cfg = load_run_config(config)
    if quick:
        cfg = quick_config(cfg)
    if device is not None:
        cfg = with_values(cfg, run={"device": device})

    class _Obs(RunObserver):
        def stage(self, name: str, message: str, seconds: float, skipped: bool) -> None:
            if not json_out:
                status(name, message, None if skipped else seconds)

        def training(self, label: str):
            return RichTrainingObserver(label) if not json_out else super().training(label)

    result = run_pipeline(cfg, out=out, from_stage=from_stage, observer=_Obs(), restart=restart)
    if json_out:
        print_json(
            "run",
            {
                "out": str(result.out),
                "exit_code": result.exit_code,
                "summary": result.summary,
                "skipped": result.skipped,
                "report": str(result.report),
            },
        )
    else:
        _render_run(result)
    raise typer.Exit(result.exit_code)


def _render_run(result) -> None:
    from rich.table import Table

    def band(v) -> str:
        return f"~{v['mid']:.3g} ({v['low']:.3g}-{v['high']:.3g})" if v else "-"

    table = Table(title=f"ppgedge run: {safe_text(result.out)}")
    cols = (
        "model",
        "params",
        "test MAE",
        "flash",
        "SRAM",
        "latency ms (est.)",
        "energy µJ (est.)",
        "verdict",
    )
    for c in cols:
        table.add_column(c, justify="left" if c in ("model", "verdict") else "right")
    for r in result.summary:
        table.add_row(
            safe_text(r["model"]),
            fmt_int(r["parameters"]) if r.get("parameters") else "-",
            f"{r['test_mae']:.2f}" if r.get("test_mae") is not None else "-",
            f"{r['flash_bytes'] / 1024:.1f} KB" if r.get("flash_bytes") else "-",
            f"{r['sram_bytes'] / 1024:.1f} KB" if r.get("sram_bytes") else "-",
            band(r.get("latency_ms")),
            band(r.get("energy_uj")),
            safe_text(r.get("verdict", "")),
        )
    console.print(table)
    console.print(f"report: {safe_text(result.report)}")
    console.print("next:")
    for cmd in result.next_commands:
        console.print(f"  [cyan]{safe_text(cmd)}[/cyan]")


@app.command("init")
def init_cmd(
    path: Path = typer.Argument(Path("ppgedge.toml"), help="Config file to write."),
    force: bool = typer.Option(False, help="Overwrite an existing file."),
) -> None:
    """Write a commented ppgedge.toml to start from."""
    from ppgedge.pipeline import write_template

    write_template(path, force=force)
    console.print(
        f"wrote {safe_text(path)}: edit it, then "
        f"[cyan]{safe_text(f'ppgedge run --config {path}')}[/cyan]"
    )


def _quiet_third_party_logs() -> None:
    """The libraries' start-up notices (torchao's optional CUDA kernels, torch's pytree
    deprecation, TensorFlow's oneDNN and converter info lines) are not for our users; their
    warnings and errors still show."""
    import logging
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    import signal

    from ppgedge.errors import note_interrupt

    _quiet_third_party_logs()

    def _on_sigint(signum: int, frame: object) -> None:
        note_interrupt()
        signal.default_int_handler(signum, frame)

    signal.signal(signal.SIGINT, _on_sigint)
    try:
        app()
    except PpgedgeError as exc:
        # a message quotes file names, keys and subject names: newlines, ESC and other controls
        # become visible escapes (one line, no terminal control) and markup is not interpreted
        err_console.print(
            f"[bold red]error:[/bold red] {safe_text(exc)}", highlight=False, soft_wrap=True
        )
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted: rerun the same command to resume", highlight=False)
        sys.exit(130)
    except SystemExit as exc:  # typer turns Ctrl-C into a silent exit 130: say what to do
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, KeyboardInterrupt):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            err_console.print("interrupted: rerun the same command to resume", highlight=False)
        raise
