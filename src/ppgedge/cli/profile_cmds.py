"""``ppgedge targets``, ``ppgedge profile`` and ``ppgedge check``: parse, call, render.

Registered on the main app (imported by ``ppgedge.cli``); all logic is in ``ppgedge.profile``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.table import Table

from ppgedge.atomic import write_text_atomic
from ppgedge.cli.app import HELP, app
from ppgedge.cli.render import console, err_console, fmt_int, fmt_si, print_json, safe_text
from ppgedge.errors import PpgedgeError
from ppgedge.ownership import JUNIT, MARKDOWN, claims

targets_app = typer.Typer(
    context_settings=HELP,
    help="List the Cortex-M target profiles, or show one.",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(targets_app, name="targets")

TARGET = typer.Option(
    None, "--target", "-t", help="Target name (see `ppgedge targets`) or a profile .toml path."
)
CONFIG = typer.Option(
    None,
    "--config",
    "-c",
    help="Project file with \\[target] and \\[budget] (default ./ppgedge.toml).",
)
TARGETS_DIR = typer.Option(
    None, "--targets-dir", help="Extra directory of target .toml profiles (also $PPGEDGE_TARGETS)."
)


RUNTIME = typer.Option(
    "tflm",
    "--runtime",
    help="tflm (interpreter, estimated code) or aot (the generated C + CMSIS-NN, counted on "
    "its linked image; needs the Arm toolchain and --tflm-src).",
)


def _resolve_target(
    target: str | None, config: Path | None, targets_dir: list[Path] | None, json_out: bool
):
    """The target in effect (``profile.targets.target_in_effect``) and the line saying where it
    came from: the first line of the rendered output, or a field of the JSON document. Nothing
    is printed before the work succeeds (no partial output on an error)."""
    from ppgedge.profile.targets import target_in_effect

    resolved, line = target_in_effect(target, config, targets_dir)
    return resolved, f"[dim]{safe_text(line)}[/dim]" if not json_out else line


def _shape(shapes: list[list[int]]) -> str:
    return ", ".join("x".join(str(d) for d in s) or "scalar" for s in shapes)


def _kb(n: float) -> str:
    return f"{n / 1024:,.1f} KB"


def _band(b: dict, unit: str, digits: int = 1) -> str:
    low, mid, high = (f"{b[k]:,.{digits}f}" for k in ("low", "mid", "high"))
    return f"{mid} {unit} [dim]({low}-{high})[/dim]"


# ------------------------------------------------------------------------------ targets
@targets_app.callback()
def targets_cmd(
    ctx: typer.Context,
    targets_dir: list[Path] = TARGETS_DIR,
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the target profiles (built-in and yours) with their default budgets."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = targets_dir
        return
    from ppgedge.profile.targets import available

    targets = available(targets_dir)
    if json_out:
        print_json("targets", {"targets": [t.to_dict() for t in targets.values()]})
        return
    table = Table(title="Cortex-M targets and default model budgets", title_justify="left")
    for col, just in (
        ("name", "left"),
        ("part", "left"),
        ("core", "left"),
        ("MHz", "right"),
        ("flash", "right"),
        ("SRAM", "right"),
        ("µA/MHz", "right"),
        ("V", "right"),
        ("budget flash", "right"),
        ("budget SRAM", "right"),
        ("ms", "right"),
        ("µJ", "right"),
    ):
        table.add_column(col, justify=just)
    for t in sorted(targets.values(), key=lambda t: t.name):
        b = t.budget
        table.add_row(
            safe_text(t.name),
            safe_text(t.title),
            safe_text(t.core),
            f"{t.clock_mhz:g}",
            f"{t.flash_kb:g} KB",
            f"{t.sram_kb:g} KB",
            f"{t.active_ua_per_mhz:g}",
            f"{t.supply_v:g}",
            f"{b.flash_kb:g} KB",
            f"{b.sram_kb:g} KB",
            f"{b.latency_ms:g}",
            f"{b.energy_uj:g}",
        )
    console.print(table)
    console.print(
        "[dim]show one with `ppgedge targets show NAME`; add yours with --targets-dir "
        "or $PPGEDGE_TARGETS[/dim]"
    )


@targets_app.command("show")
def targets_show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Target name or profile .toml path."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print one target profile with the source of every number."""
    from ppgedge.profile.targets import resolve

    t = resolve(name, ctx.obj)
    if json_out:
        print_json("target", t.to_dict())
        return
    table = Table(
        title=f"{safe_text(t.title)} ({safe_text(t.name)})", title_justify="left", show_header=True
    )
    table.add_column("field")
    table.add_column("value", justify="right")
    table.add_column("source", overflow="fold")
    rows = [
        ("core", safe_text(t.core)),
        ("clock_mhz", f"{t.clock_mhz:g}"),
        ("flash_kb", f"{t.flash_kb:g}"),
        ("sram_kb", f"{t.sram_kb:g}"),
        ("dsp", str(t.dsp)),
        ("fpu", safe_text(t.fpu)),
        ("active_ua_per_mhz", f"{t.active_ua_per_mhz:g}"),
        ("supply_v", f"{t.supply_v:g}"),
        ("sleep_ua", "not cited" if t.sleep_ua is None else f"{t.sleep_ua:g}"),
    ]
    for key, value in rows:
        table.add_row(key, value, safe_text(t.sources.get(key, "")))
    console.print(table)
    b = t.budget
    console.print(
        f"[bold]default budget[/bold]: flash {b.flash_kb:g} KB, SRAM {b.sram_kb:g} KB, latency "
        f"{b.latency_ms:g} ms, energy {b.energy_uj:g} µJ per inference, one inference every "
        f"{b.period_s:g} s, estimates checked at the {b.latency_bound} end of their band"
    )
    if b.rationale:
        console.print(f"[dim]{safe_text(b.rationale)}[/dim]")
    for key in ("verification",):
        if key in t.sources:
            console.print(f"[dim]{key}: {safe_text(t.sources[key])}[/dim]")
    if t.notes:
        console.print(f"[dim]{safe_text(t.notes)}[/dim]")
    console.print(f"[dim]{safe_text(t.path)}[/dim]")


# ------------------------------------------------------------------------------ profile
def _render_profile(d: dict) -> None:
    m, t, tot = d["model"], d["target"], d["totals"]
    console.print(
        f"[bold]{safe_text(m['file'])}[/bold]  {fmt_int(m['bytes'])} B, {m['operators']} ops, "
        f"{fmt_si(tot['macs'])} MACs  on  [cyan]{safe_text(t['title'])}[/cyan] "
        f"({safe_text(t['core'])} @ "
        f"{t['clock_mhz']:g} MHz, {t['flash_kb']:g} KB flash, {t['sram_kb']:g} KB SRAM)"
    )
    layers = Table(title="Per layer (cycles and time share are ESTIMATES)", title_justify="left")
    for col, just in (
        ("#", "right"),
        ("op", "left"),
        ("kernel", "left"),
        ("input", "left"),
        ("output", "left"),
        ("MACs", "right"),
        ("weights B", "right"),
        ("act. B", "right"),
        ("scratch B", "right"),
        ("est. cycles", "right"),
        ("time", "right"),
    ):
        layers.add_column(col, justify=just)
    for r in d["layers"]:
        layers.add_row(
            str(r["index"]),
            safe_text(r["op"]),
            safe_text(r["kernel"]),
            _shape(r["input_shapes"]),
            _shape(r["output_shapes"]),
            fmt_int(r["macs"]) if r["macs"] else "",
            fmt_int(r["param_bytes"]) if r["param_bytes"] else "",
            fmt_int(r["activation_bytes"]),
            fmt_int(r["scratch_bytes"]) if r["scratch_bytes"] else "",
            fmt_si(r["cycles"]["mid"]),
            f"{100 * r['share']:.1f}%",
        )
    console.print(layers)

    fl, sr, la, en = tot["flash"], tot["sram"], tot["latency"], tot["energy"]
    b = d["budget"]
    totals = Table(title="Totals: value, physical floor, ratio, budget", title_justify="left")
    for col, just in (
        ("", "left"),
        ("value", "right"),
        ("floor", "right"),
        ("x floor", "right"),
        ("budget", "right"),
    ):
        totals.add_column(col, justify=just)

    def ratio(x: float | None) -> str:
        return f"{x:.2f}x" if x is not None else "-"

    totals.add_row(
        "flash",
        _kb(fl["total_bytes"]),
        _kb(fl["floor_bytes"]),
        ratio(fl["ratio"]),
        f"{b['flash_kb']:g} KB",
    )
    aot = fl.get("runtime") == "aot"
    totals.add_row("  generated C" if aot else "  model file", _kb(fl["model_bytes"]), "", "", "")
    code = "  CMSIS-NN, app, libc (linked)" if aot else "  runtime code (est.)"
    totals.add_row(code, _kb(fl["runtime_bytes"]), "", "", "")
    totals.add_row(
        "SRAM",
        _kb(sr["total_bytes"]),
        _kb(sr["floor_bytes"]),
        ratio(sr["ratio"]),
        f"{b['sram_kb']:g} KB",
    )
    plan = "  arena (AOT plan, scratch incl.)" if aot else "  activations (TFLM plan)"
    totals.add_row(plan, _kb(sr["activations_bytes"]), "", ratio(sr["arena_ratio"]), "")
    requested = f"[dim]{fmt_int(sr['scratch_requested_bytes'])} B requested[/dim]"
    totals.add_row("  + kernel scratch (arena growth)", _kb(sr["scratch_bytes"]), "", "", requested)
    totals.add_row("  persistent (est., 32-bit)", _kb(sr["persistent_bytes"]), "", "", "")
    totals.add_row("  input buffer (app copy)", _kb(sr["input_buffer_bytes"]), "", "", "")
    totals.add_row("  output buffer (app copy)", _kb(sr["output_buffer_bytes"]), "", "", "")
    for item in sr.get("application_items", []):  # e.g. the bundle's tracker state
        totals.add_row(f"  {item['name']}", _kb(item["bytes"]), "", "", "")
    totals.add_row(
        "latency [bold](ESTIMATE)[/bold]",
        _band(la["ms"], "ms", 2),
        f"{la['floor_ms']:,.2f} ms",
        ratio(la["ratio"]),
        f"{b['latency_ms']:g} ms ({b['latency_bound']})",
    )
    totals.add_row(
        "  cycles",
        _band({k: v / 1e6 for k, v in la["cycles"].items()}, "M", 2),
        f"{la['floor_cycles'] / 1e6:,.2f} M",
        "",
        "",
    )
    totals.add_row(
        "energy / inference [bold](ESTIMATE)[/bold]",
        _band(en["uj"], "µJ"),
        f"{en['floor_uj']:,.1f} µJ",
        ratio(en["ratio"]),
        f"{b['energy_uj']:g} µJ ({b['latency_bound']})",
    )
    sleep = "incl. sleep" if en["sleep_included"] else "inference only, no sleep current cited"
    totals.add_row(
        f"avg power @ 1/{en['period_s']:g} s (ESTIMATE)",
        _band(en["avg_power_uw"], "µW"),
        "",
        "",
        f"[dim]{sleep}[/dim]",
    )
    console.print(totals)
    if not en["fits_period"]:
        console.print("[yellow]the high estimate of one inference exceeds the period[/yellow]")
    console.print(f"[dim]{safe_text(d['note'])} Cycle model: {safe_text(la['basis'])}.[/dim]")


@app.command("profile")
def profile_cmd(
    model: Path = typer.Argument(..., help="An int8 .tflite model (ours or any other)."),
    target: str | None = TARGET,
    config: Path | None = CONFIG,
    targets_dir: list[Path] = TARGETS_DIR,
    json_out: bool = typer.Option(False, "--json", help="Print JSON (ppgedge.profile/1)."),
    measure: bool = typer.Option(
        False,
        "--measure",
        help="Also build the firmware with TFLite Micro + CMSIS-NN for the target's core, run "
        "it in QEMU and report measured flash, arena, instructions and bit-exactness.",
    ),
    tflm_src: Path | None = typer.Option(
        None, "--tflm-src", help="TFLite Micro + CMSIS-NN source tree (or $PPGEDGE_TFLM_SRC)."
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Dataset (.ppgds) whose first windows feed the firmware."
    ),
    windows: int = typer.Option(8, "--windows", help="Inputs to run in the emulator."),
    timeout: float = typer.Option(300.0, "--timeout", help="Emulator time limit in seconds."),
    runtime: str = RUNTIME,
) -> None:
    """Per-layer cost and totals of a model on a Cortex-M target (flash, SRAM, ESTIMATED
    latency and energy), each beside its physical floor; with --measure, beside what the real
    firmware build showed."""
    from ppgedge.profile.report import profile
    from ppgedge.profile.runtime import with_runtime

    resolved, config_line = _resolve_target(target, config, targets_dir, json_out)
    if not measure and data:
        raise PpgedgeError("--data goes with --measure")
    if not measure and runtime != "aot" and tflm_src:
        raise PpgedgeError("--tflm-src goes with --measure or --runtime aot")
    measured = None
    if measure:
        from ppgedge.firmware.measure import measure as run_measure

        measured = run_measure(
            model, resolved, windows, data=data, tflm_src=tflm_src, timeout_s=timeout
        )
        model = model / f"{measured.model['file']}" if model.is_dir() else model
    report = with_runtime(profile(model, resolved), model, runtime, tflm_src)
    doc = report.to_dict()
    cmp = None
    if measured is not None:
        from ppgedge.firmware.compare import compare

        cmp = compare(doc, measured.to_dict())
    if json_out:
        payload = {"config": config_line, **{k: v for k, v in doc.items() if k != "schema"}}
        if measured is not None:
            payload["measured"] = measured.to_dict()
            payload["comparison"] = cmp
        print_json("profile", payload)
        return
    console.print(config_line, highlight=False)
    _render_profile(doc)
    if measured is not None:
        from ppgedge.cli.measure_view import render_measured

        render_measured(measured.to_dict(), cmp, resolved.clock_mhz)


# -------------------------------------------------------------------------------- check
@app.command("check")
def check_cmd(
    model: Path = typer.Argument(..., help="An int8 .tflite model."),
    target: str | None = TARGET,
    config: Path | None = CONFIG,
    targets_dir: list[Path] = TARGETS_DIR,
    json_out: bool = typer.Option(False, "--json", help="Print JSON (ppgedge.check/1)."),
    junit: Path | None = typer.Option(
        None, "--junit", help="Write JUnit XML here.", callback=claims(JUNIT, "--junit")
    ),
    markdown: Path | None = typer.Option(
        None,
        "--markdown",
        help="Write a Markdown summary.",
        callback=claims(MARKDOWN, "--markdown"),
    ),
    baseline: Path | None = typer.Option(
        None, "--baseline", help="A previous `check --json` report to compare against."
    ),
    max_regression: float = typer.Option(
        5.0, "--max-regression", help="Fail when a metric grows by more than this % vs baseline."
    ),
    verify: Path | None = typer.Option(
        None,
        "--verify",
        help="The model's verify report (default: verify.json beside it, or the run's).",
    ),
    runtime: str = RUNTIME,
    tflm_src: Path | None = typer.Option(
        None, "--tflm-src", help="TFLite Micro + CMSIS-NN sources for --runtime aot."
    ),
) -> None:
    """Gate a model on its target's budget: exit 0 all hold, 1 exceeded or regressed, 2 bad
    input. Latency and energy are ESTIMATES checked at the budget's bound of their band."""
    from ppgedge.profile.check import github_annotations, run_check, to_junit, to_markdown
    from ppgedge.profile.report import profile
    from ppgedge.profile.runtime import with_runtime

    # every output is checked before the model is profiled: a report that cannot be written is
    # one line and exit 2 before anything is printed, not a traceback after the table
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    for path, option in ((junit, "--junit"), (markdown, "--markdown")):
        _writable_file(path, option)
    if summary:
        _append(summary, "")  # opened (created if absent) now, before any work or output
    resolved, config_line = _resolve_target(target, config, targets_dir, json_out)
    report = with_runtime(profile(model, resolved), model, runtime, tflm_src)
    result = run_check(report, resolved.budget, baseline, max_regression, verify)
    doc = result.to_dict()
    if junit is not None:
        _write_report(junit, "--junit", to_junit(result))
    md = to_markdown(result) if markdown is not None or summary else ""
    if markdown is not None:
        _write_report(markdown, "--markdown", md)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        if summary:
            _append(summary, md + "\n")
        stream = sys.stderr if json_out else sys.stdout
        for line in github_annotations(result):
            stream.write(line + "\n")
    if json_out:
        print_json(
            "check", {"config": config_line, **{k: v for k, v in doc.items() if k != "schema"}}
        )
    else:
        console.print(config_line, highlight=False)
        _render_check(result)
    raise typer.Exit(result.exit_code)


def _append(path: str, text: str) -> None:
    """Append to GitHub's step summary file, one line and exit 2 if it cannot be written."""
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise PpgedgeError(f"$GITHUB_STEP_SUMMARY {path}: cannot append ({exc.strerror})") from None


def _writable_file(path: Path | None, option: str) -> None:
    """Refuse, before any work, a report path this user cannot write: an existing folder, a
    parent that is a file, a folder without write permission."""
    if path is None:
        return
    try:
        if path.is_dir():
            raise PpgedgeError(f"{option} {path} is a folder: give a file name")
        parent = path.absolute().parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise PpgedgeError(f"{option} {path}: {parent} is not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise PpgedgeError(f"{option} {path}: cannot write in {parent} (permission denied)")
    except OSError as exc:
        raise PpgedgeError(f"{option} {path}: unusable path ({exc.strerror})") from None


def _write_report(path: Path, option: str, text: str) -> None:
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise PpgedgeError(f"{option} {path}: cannot write ({exc.strerror})") from None


def _render_check(result) -> None:
    """One table: each budget's limit, value, margin and, with --baseline, its change; a
    regression is marked in its own row, never below an all-ok table."""
    from ppgedge.profile.check import change_text

    t = result.report.target
    table = Table(
        title=f"Budget check: {safe_text(result.report.model['file'])} on {safe_text(t.title)}",
        title_justify="left",
    )
    deltas = {d.name: d for d in result.deltas}
    columns = [("budget", "left"), ("limit", "right"), ("value", "right"), ("margin", "right")]
    if result.baseline_path is not None:
        columns.append((f"vs baseline (max +{result.max_regression_pct:g}%)", "right"))
    for col, just in (*columns, ("", "left")):
        table.add_column(col, justify=just)
    for r in result.results:
        value = f"{r.value:,.2f} {r.unit}"
        if r.band:
            value += f" [dim](est. {r.band[0]:,.1f}-{r.band[1]:,.1f}, {r.bound})[/dim]"
        d = deltas.get(r.name)
        regressed = d is not None and d.regressed
        if not r.ok:
            status = "[bold red]EXCEEDED[/bold red]"
        elif regressed:
            status = "[bold red]REGRESSED[/bold red]"
        else:
            status = "[green]ok[/green]"
        limit = f"{r.limit:,.2f} {r.unit}"
        if r.basis and r.basis != "budget":
            limit += f" [dim]({r.basis})[/dim]"
        cells = [r.name, limit, value, f"{r.margin:,.2f} {r.unit} ({r.margin_pct:+.1f}%)"]
        if result.baseline_path is not None:
            change = "-" if d is None else change_text(d)
            cells.append(f"[bold red]{change}[/bold red]" if regressed else change)
        table.add_row(*cells, status)
    console.print(table)
    if result.accuracy is None:
        console.print(
            "[yellow]accuracy not gated: no verify report for this model[/yellow] "
            "[dim](run `ppgedge verify`, or pass --verify FILE)[/dim]"
        )
    else:
        a = result.accuracy
        console.print(
            f"[dim]accuracy from {safe_text(a.path)}: {a.windows:,} windows "
            f"({safe_text(a.part)}), TFLite Micro int8[/dim]"
        )
    if result.passed:
        console.print("[bold green]check passed[/bold green]")
    else:
        failed = [r.name for r in result.results if not r.ok]
        failed += [f"{d.name} regressed" for d in result.deltas if d.regressed]
        err_console.print(f"[bold red]check failed[/bold red]: {safe_text(', '.join(failed))}")
