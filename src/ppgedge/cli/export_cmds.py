"""``ppgedge export|verify``: parse, call the export stage, render."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ppgedge.cli.app import (
    EvalPart,
    SplitPart,
    app,
)
from ppgedge.cli.render import (
    console,
    print_json,
    safe_text,
    status,
)
from ppgedge.errors import PpgedgeError
from ppgedge.ownership import EXPORT, claims


# --------------------------------------------------------------------------------- export
@app.command("export")
def export_cmd(
    model: Path = typer.Argument(..., help="Int8 artifact (qat/quantize) or float checkpoint."),
    fmt: str = typer.Option(
        "all", "--format", help="tflite, tflm, onnx, aot (C99 + CMSIS-NN; comma list) or all."
    ),
    out: Path = typer.Option(
        Path("export"), "-o", "--out", help="Output directory.", callback=claims(EXPORT)
    ),
    name: str | None = typer.Option(None, help="Model name (file names, C identifiers)."),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="Float checkpoint: calibration data (dataset or .npy windows). Int8 artifact: "
        "its training dataset, if moved (the tracker is fitted on the int8 outputs).",
    ),
    windows: int = typer.Option(512, min=1, help="Calibration windows (float checkpoint)."),
    part: SplitPart = typer.Option("train", help="Split part to calibrate on."),
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
        ) + (
            (  # the AOT code is checked and counted on its linked image
                f"ppgedge verify {result.out_dir} DATASET --runtime aot --tflm-src DIR",
                f"ppgedge profile {tfl} --target nrf52840 --runtime aot --tflm-src DIR",
            )
            if "aot" in result.files
            else ()
        ):
            console.print(f"  [cyan]{safe_text(cmd)}[/cyan]")


@app.command("verify")
def verify_cmd(
    model: Path = typer.Argument(..., help="Export directory, .tflite, or int8 artifact."),
    dataset: Path = typer.Argument(..., help="Dataset directory."),
    part: EvalPart = typer.Option("auto", help="auto: the model's test subjects."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    runtime: str = typer.Option(
        "tflm",
        "--runtime",
        help="aot: also compare the AOT C build with TFLM + CMSIS-NN, both on a Cortex-M4 in "
        "QEMU and on the host (needs the Arm toolchain, QEMU and --tflm-src).",
    ),
    tflm_src: Path | None = typer.Option(None, "--tflm-src", help="Sources for --runtime aot."),
    windows: int = typer.Option(200, "--windows", min=1, help="Windows for --runtime aot."),
) -> None:
    """Run the int8 model in TFLite Micro and LiteRT; compare with PyTorch. Exit 1 on a miss."""
    from ppgedge.data.format import Dataset
    from ppgedge.export.verify import verify

    if runtime not in ("tflm", "aot"):
        raise PpgedgeError(f"unknown runtime {runtime!r}: use tflm or aot")
    report = verify(model, Dataset(dataset), part=part)
    aot = None
    if runtime == "aot":
        from ppgedge.aot.verify import verify_aot

        aot = verify_aot(model, dataset, windows, tflm_src=tflm_src)
    aot_ok = aot is None or (aot.bit_exact_device and bool(aot.bit_exact_host))
    if json_out:
        print_json("verify", report.to_dict() | ({"aot": aot.to_dict()} if aot else {}))
    else:
        _render_verify(report)
        if aot is not None:
            mark = "[green]pass[/green]" if aot_ok else "[red]FAIL[/red]"
            console.print(
                f"  {mark} AOT C == TFLite Micro + CMSIS-NN on {aot.windows} windows "
                f"({aot.core} in QEMU and host); instructions {aot.instructions['ratio']:.2f}x, "
                f"flash {aot.flash['ratio']:.2f}x, RAM {aot.ram['ratio']:.2f}x"
            )
    if not report.ok or not aot_ok:
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
    if r.mae_tflm_tracked is not None:
        table.add_row("TFLite Micro, tracked", f"{r.mae_tflm_tracked:.3f}", "")
        table.add_row("LiteRT, tracked", f"{r.mae_litert_tracked:.3f}", "")
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
    tr = r.tracking or {}
    if tr.get("val_decoder"):
        which = "tracked" if tr["val_decoder"] == "tracked" else "per-window"
        console.print(
            f"the bundle reports the {which} value: the tracker fitted on "
            f"{safe_text(tr.get('fitted_on', 'float'))} validation outputs chose "
            f"{safe_text(tr['val_decoder'])}"
        )
    from ppgedge.evaluate.coverage import deployed_line

    coverage = deployed_line(r.coverage, tr.get("val_decoder"))
    if coverage:
        console.print(f"by reference heart rate: {safe_text(coverage)}")
    console.print(
        f"LiteRT vs TFLite Micro: max {r.max_step_diff_tflite_vs_tflm} int8 step(s), "
        f"{r.windows_differing:.1%} of windows differ somewhere"
    )
    for check, ok in r.checks.items():
        mark = "[green]pass[/green]" if ok else "[red]FAIL[/red]"
        console.print(f"  {mark} {safe_text(check)}")
    for note in r.notes:
        console.print(f"  note: {safe_text(note)}")
