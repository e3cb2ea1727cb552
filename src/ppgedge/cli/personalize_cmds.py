"""``ppgedge personalize``: parse, call the personalisation stage, render."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ppgedge.cli.app import app
from ppgedge.cli.render import console, print_json, safe_text, status
from ppgedge.ownership import BUNDLE, claims


@app.command("personalize")
def personalize_cmd(
    model: Path = typer.Argument(..., help="Export folder (or its .tflite) of an int8 model."),
    data: Path = typer.Argument(..., help="Dataset holding the subject's labelled windows."),
    subject: str = typer.Option(..., "--subject", help="The held-out subject to calibrate."),
    minutes: float = typer.Option(
        2.0, "--minutes", help="Calibrate on this subject's first N minutes; score the rest."
    ),
    out: Path = typer.Option(
        ..., "-o", "--out", help="Bundle folder to write.", callback=claims(BUNDLE)
    ),
    l2: float | None = typer.Option(
        None, "--l2", help="Pull towards the deployed bias (default: chosen on validation)."
    ),
    basis: str | None = typer.Option(
        None, "--basis", help="free, linear, quadratic or cubic bias change (default: chosen)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Re-fit the final layer's bias on one wearer's first minutes (TFLite Micro bundle)."""
    from ppgedge.export.personalize import DEFAULT_BASIS, DEFAULT_L2, personalize

    t0 = time.perf_counter()
    r = personalize(
        model,
        data,
        subject,
        minutes,
        out,
        l2=DEFAULT_L2 if l2 is None else l2,
        basis=basis or DEFAULT_BASIS,
    )
    if json_out:
        print_json("personalize", {k: v for k, v in r.to_dict().items() if k != "schema"})
        return
    c = r.changed
    status(
        "personalize",
        f"{r.subject}: {r.calibration_windows} windows ({r.minutes:g} min) calibrate, "
        f"{r.evaluation_windows} score",
        time.perf_counter() - t0,
    )
    console.print(
        f"MAE on the rest of {safe_text(r.subject)} (TFLite Micro int8): per window "
        f"{r.mae_before:.2f} -> {r.mae_after:.2f} BPM"
        + (
            ""
            if r.mae_after_tracked is None
            else f", tracked {r.mae_before_tracked:.2f} -> {r.mae_after_tracked:.2f}"
        )
        + f"; the bundle reports the {r.reports} value"
    )
    console.print(
        f"changed: {c['bytes_changed']} bytes in {c['elements_changed']} of {c['elements']} "
        f"int32 bias values, file bytes {c['bias_bytes'][0]}-{c['bias_bytes'][1] - 1}, "
        f"{c['outside_bias']} outside"
    )
    console.print(f"bundle: {safe_text(r.bundle)}")
