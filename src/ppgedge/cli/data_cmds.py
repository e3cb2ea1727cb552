"""``ppgedge data synth|import|info``: parse, call the data stage, render."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ppgedge.cli.app import (
    CHANNELS,
    HELP,
    ImportKind,
    app,
)
from ppgedge.cli.render import (
    console,
    fmt_int,
    print_json,
    safe_text,
    status,
)
from ppgedge.errors import PpgedgeError
from ppgedge.ownership import DATASET, claims

data_app = typer.Typer(
    help="Create, import and inspect datasets.", no_args_is_help=True, context_settings=HELP
)
app.add_typer(data_app, name="data")

# ----------------------------------------------------------------------------------- data
RATE = typer.Option(32.0, "--rate", help="Common sample rate, Hz.")
WINDOW = typer.Option(8.0, "--window", help="Window length, s.")
HOP = typer.Option(2.0, "--hop", help="Hop between windows, s.")


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
    motion: bool = typer.Option(False, help="Add arm-exercise, boxing and stairs sessions."),
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
    fmt = _format(rate, window, hop, channels)
    write_dataset(synthesize(subjects, minutes, seed, fmt, motion=motion), out)
    _dataset_line(out, time.perf_counter() - t0)


@data_app.command("import")
def data_import(
    kind: ImportKind = typer.Argument(..., help="What the recordings are."),
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


@data_app.command("merge")
def data_merge(
    datasets: list[Path] = typer.Argument(..., help="Two or more datasets of one format."),
    out: Path = typer.Option(
        ..., "-o", "--out", help="Dataset directory to write.", callback=claims(DATASET)
    ),
    prefix: bool = typer.Option(
        False, help="Rename subjects to <dataset>_<subject> (when ids repeat across datasets)."
    ),
) -> None:
    """Merge datasets of the same format into one (subjects stay distinct)."""
    from ppgedge.data.merge import merge_datasets

    t0 = time.perf_counter()
    merge_datasets(datasets, out, prefix=prefix)
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
