"""``ppgedge run|init``: the whole chain, rendered stage by stage."""

from __future__ import annotations

from pathlib import Path

import typer

from ppgedge.cli.app import (
    Device,
    app,
)
from ppgedge.cli.render import (
    console,
    fmt_int,
    print_json,
    safe_text,
    status,
)
from ppgedge.ownership import RUN, claims

# ------------------------------------------------------------------------------------ run
STAGE_NAMES = "data, teacher, distill, prune, qat, export, verify, profile, check"


@app.command("run")
def run_cmd(
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="Config file (default ./ppgedge.toml, else the built-in synthetic config).",
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
    device: Device | None = typer.Option(None, help="Overrides [run] device."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    restart: bool = typer.Option(
        False, help="Discard interrupted training's resume files and train from epoch 0."
    ),
) -> None:
    """Teacher to firmware bundle: every stage, resumable; exit code as `check`."""
    from ppgedge.pipeline.config import load_run_config, with_values
    from ppgedge.profile.targets import PROJECT_FILE, config_in_effect

    path = config_in_effect(config)  # as profile and check find it
    cfg = load_run_config(path)  # a bad config is refused here, before PyTorch is imported
    from ppgedge.pipeline.run import RunObserver, quick_config, run_pipeline

    if not json_out:
        where = f"config: {path}" if path else f"config: built-in (no ./{PROJECT_FILE})"
        console.print(f"[dim]{safe_text(where + ('; --quick' if quick else ''))}[/dim]")
    if quick:
        cfg = quick_config(cfg)
    if device is not None:
        cfg = with_values(cfg, run={"device": device})

    class _Obs(RunObserver):
        def starting(self, name: str) -> None:
            if not json_out:
                console.print(f"[dim]{safe_text(name)}: running ...[/dim]", highlight=False)

        def stage(self, name: str, message: str, seconds: float, skipped: bool) -> None:
            if not json_out:
                status(name, message, None if skipped else seconds)

        def training(self, label: str):
            if json_out:
                return super().training(label)
            from ppgedge.cli.progress import RichTrainingObserver

            return RichTrainingObserver(label)

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
    tracked = result.summary[-1].get("test_mae_tracked") if result.summary else None
    if tracked is not None:
        line = (
            f"int8 model tracked over time: test MAE {tracked:.2f} "
            f"(window by window {result.summary[-1]['test_mae']:.2f})"
        )
        chosen = result.summary[-1].get("deployed_decoder")
        if chosen is not None:
            which = "tracked" if chosen == "tracked" else f"per-window ({safe_text(chosen)})"
            line += f"; the bundle reports the {which} value, chosen on validation"
        console.print(line)
    coverage = result.summary[-1].get("heart_rate_coverage") if result.summary else None
    if coverage:
        console.print(f"int8 model by reference heart rate: {safe_text(coverage)}")
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
