"""Render ``ppgedge profile --measure``: what the firmware build showed, beside the estimates."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from ppgedge.cli.render import console, fmt_int, fmt_si, safe_text


def _kb(n: float) -> str:
    return f"{n / 1024:,.1f} KB"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.1f}%"


def render_measured(m: dict[str, Any], cmp: dict[str, Any], clock_mhz: float) -> None:
    """Tables: correctness, flash/RAM/arena, instructions per layer and per op type."""
    b, ex = m["board"], m["exact"]
    console.print(
        f"\n[bold]Measured[/bold]: built with {safe_text(m['build']['compiler'])} for "
        f"{b['core']}, run in QEMU {b['machine']} on {safe_text(m['inputs'])}"
    )
    ok = "[green]yes[/green]" if ex["bit_exact"] else "[bold red]NO[/bold red]"
    console.print(
        f"int8 outputs bit-exact with the TFLite Micro Python runtime: {ok} "
        f"({ex['windows']} windows, max difference {ex['max_diff']})"
    )
    pre = m.get("preprocessing")
    if pre:
        console.print(
            f"C preprocessing vs Python: {pre['identical_windows']}/{pre['windows']} windows "
            f"identical, max difference {pre['max_diff']} (int8 steps)"
        )

    fl, ram, ar = m["flash"], m["ram"], m["arena"]
    t = Table(title="Firmware image (linked ELF, text + data)", title_justify="left")
    for col in ("", "flash", "RAM (data + bss)"):
        t.add_column(col, justify="left" if not col else "right")
    for part in ("model", "framework", "kernels", "libc", "app"):
        label = {"libc": "C libraries (newlib-nano, libm, libgcc)", "app": "application"}
        t.add_row(label.get(part, part), _kb(fl.get(part, 0)), _kb(ram.get(part, 0)))
    t.add_row("tensor arena (declared)", "", _kb(ram["arena"]))
    cf = cmp["flash"]
    t.add_row(
        "[bold]total[/bold]",
        f"[bold]{_kb(fl['total'])}[/bold]",
        f"[bold]{_kb(ram['total'])}[/bold]",
    )
    t.add_row("profile's estimate", f"{_kb(cf['profile_bytes'])} ({_pct(cf['error_pct'])})", "")
    console.print(t)
    smallest = ar["smallest"]
    ratio = cmp["arena"]["declared_over_smallest"]
    console.print(
        f"arena: arena_used_bytes() {fmt_int(ar['used'])} B on the 32-bit core, smallest that "
        f"allocates and gives the same outputs {fmt_int(smallest) if smallest else '-'} B, "
        f"declared {fmt_int(ar['declared'])} B ({safe_text(ar['declared_from'])}"
        + (f", {ratio:.2f}x the smallest)" if ratio else ")")
        + f"; stack high-water {fmt_int(m['stack_bytes'])} B"
    )

    ins, cyc = m["instructions"], cmp["cycles"]
    cpi = m["cycles"]["cpi"]
    layers = Table(
        title=f"Per layer: executed instructions (measured) and cycles (ESTIMATES: "
        f"instructions x {cpi:.3f} CPI, and the profile's cycle model)",
        title_justify="left",
    )
    for col, just in (
        ("#", "right"),
        ("op", "left"),
        ("instructions", "right"),
        ("x CPI", "right"),
        ("profile est.", "right"),
        ("est. error", "right"),
    ):
        layers.add_column(col, justify=just)
    for r in cyc["per_layer"]:
        layers.add_row(
            str(r["index"]),
            safe_text(r["op"]),
            fmt_int(r["instructions"]),
            fmt_si(r["cycles_from_instructions"]),
            fmt_si(r["estimated_cycles"]),
            _pct(r["error_pct"]),
        )
    console.print(layers)
    types = Table(title="Per operator type", title_justify="left")
    for col, just in (
        ("op", "left"),
        ("share", "right"),
        ("x CPI", "right"),
        ("profile est.", "right"),
        ("est. error", "right"),
    ):
        types.add_column(col, justify=just)
    for op, r in sorted(cyc["per_op_type"].items(), key=lambda kv: -kv[1]["share"]):
        types.add_row(
            safe_text(op),
            f"{100 * r['share']:.1f}%",
            fmt_si(r["cycles_from_instructions"]),
            fmt_si(r["estimated_cycles"]),
            _pct(r["error_pct"]),
        )
    console.print(types)
    ms = cyc["from_instructions"] / (clock_mhz * 1e3)
    console.print(
        f"Invoke: {fmt_int(ins['invoke'])} instructions (interpreter outside operators "
        f"{fmt_int(ins['outside_ops'])}) -> {fmt_si(cyc['from_instructions'])} cycles, "
        f"{ms:,.2f} ms at {clock_mhz:g} MHz (ESTIMATE); profile's model "
        f"{fmt_si(cyc['estimated'])} cycles ({_pct(cyc['error_pct'])})"
    )
    if m["model"]["bundle"]:
        console.print(
            f"preprocessing {fmt_int(ins['preprocess'])} instructions, decoding "
            f"{fmt_int(ins['decode'])} per window"
        )
    console.print(f"[dim]{safe_text(m['note'])}. CPI: {safe_text(m['cycles']['basis'])}.[/dim]")
    s = m["seconds"]
    console.print(
        f"[dim]build {s['build']:.1f} s ({m['build']['runtime_objects_compiled']} runtime "
        f"objects compiled; cache {safe_text(m['build']['cache'])}), emulator "
        f"{s['emulator']:.1f} s[/dim]"
    )
