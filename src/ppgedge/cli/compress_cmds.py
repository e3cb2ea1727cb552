"""``ppgedge prune|qat|quantize``: parse, call the compress stage, render."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ppgedge.cli.app import (
    DEVICE,
    Device,
    FinetuneMethod,
    PruneCriterion,
    QatMethod,
    SplitPart,
    app,
    dataset_for,
)
from ppgedge.cli.render import (
    console,
    fmt_int,
    fmt_si,
    print_json,
    safe_text,
    status,
)
from ppgedge.compress.defaults import PRUNE_FINAL_EPOCHS, PRUNE_FINETUNE_EPOCHS, PRUNE_STEPS
from ppgedge.errors import PpgedgeError
from ppgedge.ownership import CHECKPOINT, claim, claims


# ------------------------------------------------------------------------------- compress
@app.command("prune")
def prune_cmd(
    checkpoint: Path = typer.Argument(..., help="Float checkpoint to prune."),
    to: str | None = typer.Option(
        None, "--to", help="Budget: 30000 / 30k params, 2M macs, 40kb flash, or 50%."
    ),
    target: str | None = typer.Option(
        None,
        "--target",
        "-t",
        help="Prune until the model fits this target's budget (name or .toml; with --config "
        "or ./ppgedge.toml, its [budget] overrides apply).",
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Project file for --target (default ./ppgedge.toml)."
    ),
    data: Path | None = typer.Option(None, "--data", help="Dataset (default: the model's own)."),
    out: Path | None = typer.Option(
        None,
        "-o",
        "--out",
        help="Pruned checkpoint (default NAME.pruned.pt).",
        callback=claims(CHECKPOINT),
    ),
    criterion: PruneCriterion = typer.Option("l1", help="Channel importance."),
    steps: int = typer.Option(PRUNE_STEPS, min=1, help="Iterative pruning steps (as ppgedge run)."),
    finetune_epochs: int = typer.Option(
        PRUNE_FINETUNE_EPOCHS, min=0, help="Fine-tuning epochs between steps (as ppgedge run)."
    ),
    final_epochs: int = typer.Option(
        PRUNE_FINAL_EPOCHS, min=0, help="Fine-tuning epochs after the last step (as ppgedge run)."
    ),
    round_to: int = typer.Option(4, help="Channel counts are multiples of this (4 or 8)."),
    teacher: Path | None = typer.Option(None, help="Fine-tune with distillation from it."),
    method: FinetuneMethod = typer.Option("dkd", help="Distillation method with --teacher."),
    rebuild: bool = typer.Option(
        False,
        help="Also distil the pruned architecture from a fresh start (needs --teacher; the "
        "student's epochs) and keep the better on validation, the other beside it.",
    ),
    device: Device = DEVICE,
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Remove whole channels until the model fits a budget."""
    if (to is None) == (target is None):
        raise PpgedgeError("give one budget: --to (e.g. 50%, 30k params) or --target NAME")
    if rebuild and teacher is None:
        raise PpgedgeError("--rebuild distils from a teacher: add --teacher TEACHER.pt")
    from rich.table import Table

    from ppgedge.compress.prune import parse_budget, prune
    from ppgedge.data.splits import Split
    from ppgedge.models.checkpoint import load_checkpoint

    ds = dataset_for(checkpoint, data)
    split_d = load_checkpoint(checkpoint).training.get("split")
    if not split_d:
        raise PpgedgeError(f"{checkpoint}: no training split recorded; train it with ppgedge")
    split = Split.from_dict(split_d)
    out = out or claim(checkpoint.with_name(checkpoint.stem + ".pruned.pt"), CHECKPOINT)
    if rebuild:  # the candidate not kept goes beside --out: refuse a foreign file there now
        from ppgedge.compress.rebuild import rebuilt_path

        claim(rebuilt_path(out), CHECKPOINT, "--rebuild: the other candidate,")
    if target is not None:
        from ppgedge.profile.prune_target import prune_budget_for
        from ppgedge.profile.targets import target_in_effect

        resolved, _ = target_in_effect(target, config)
        to = prune_budget_for(checkpoint, resolved)
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
    choice = None
    if rebuild and not result.nothing_to_do:
        from ppgedge.compress.rebuild import keep_better_rebuilt

        best = keep_better_rebuilt(
            out, checkpoint, teacher, ds, split, method=method, device=device
        )
        choice = best.metrics["choice"]
    if json_out:
        print_json(
            "prune",
            {
                "checkpoint": None if result.nothing_to_do else str(out),
                "nothing_to_do": result.nothing_to_do,
                "steps": result.steps,
                **({"choice": choice} if choice else {}),
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
    kept = ""
    if choice:
        from ppgedge.distill.choose import val_scores_text

        other = next(f for k, f in choice["files"].items() if k != choice["kept"])
        kept = f", {choice['kept']} kept (val MAE {val_scores_text(choice)}; the other is {other})"
    status(
        "prune",
        f"{out}: {fmt_int(result.steps[-1]['parameters'])} params{kept}",
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
    method: QatMethod = typer.Option("dkd", help="Distillation loss with --teacher."),
    tflm: bool = typer.Option(True, help="Also measure the int8 model in TFLite Micro."),
    device: Device = DEVICE,
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Quantisation-aware training to int8 (the scales export keeps)."""
    from ppgedge.cli.progress import training_progress  # torch: imported only to train
    from ppgedge.compress.quantize import default_artifact_path, qat

    ds = dataset_for(checkpoint, data)
    t0 = time.perf_counter()
    with training_progress("qat", json_out) as observer:
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
    _quant_summary("qat", result, t0, json_out)


@app.command("quantize")
def quantize_cmd(
    checkpoint: Path = typer.Argument(..., help="Float checkpoint."),
    ptq: bool = typer.Option(
        True, "--ptq/--qat", help="Post-training calibration (default) or QAT (`ppgedge qat`)."
    ),
    epochs: int = typer.Option(5, min=1, help="QAT epochs (with --qat)."),
    data: Path | None = typer.Option(None, "--data", help="Dataset (default: the model's own)."),
    windows: int = typer.Option(512, min=1, help="Representative windows to calibrate on."),
    part: SplitPart = typer.Option("train", help="Split part to draw them from."),
    out: Path | None = typer.Option(
        None,
        "-o",
        "--out",
        help="Artifact (default NAME.ptq.int8.pt, or NAME.qat.int8.pt).",
        callback=claims(CHECKPOINT),
    ),
    tflm: bool = typer.Option(True, help="Also measure the int8 model in TFLite Micro."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Quantise to int8: post-training calibration by default (the baseline QAT must beat),
    quantisation-aware training with --qat (the same as `ppgedge qat` with its defaults)."""
    from ppgedge.compress.quantize import default_artifact_path
    from ppgedge.compress.quantize import ptq as run_ptq

    if not ptq:
        qat_cmd(
            checkpoint=checkpoint,
            data=data,
            out=out,
            epochs=epochs,
            lr=1e-4,
            teacher=None,
            method="dkd",
            tflm=tflm,
            device="auto",
            json_out=json_out,
        )
        return

    ds = dataset_for(checkpoint, data)
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
