"""Rich rendering shared by the commands: tables, status lines, training progress."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ppgedge.textsafe import printable, safe_text

__all__ = ["console", "err_console", "safe_text"]


class SafeConsole(Console):
    """A console that never writes a control character it did not generate itself.

    Every string Rich renders (``print`` arguments, table cells, titles) passes through
    ``render_str``; an ESC, BEL or bidi override from a file or name is shown as a visible
    ``\\x1b``-style escape before markup is parsed (markup tags never hold control characters).
    Markup in user text is escaped where it is interpolated, with :func:`safe_text`."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(printable(text, keep="\n\t"), **kwargs)


# Piped output (every CI log) is read later, in a browser or a file, not in an 80-column
# terminal: tables are printed at their natural width and lines never wrapped, so no cell is
# cut to "…" and a printed command can be pasted whole. A terminal keeps its own width.
PIPE_WIDTH = 10_000


def _console(stderr: bool = False) -> SafeConsole:
    c = SafeConsole(stderr=stderr)
    if not c.is_terminal:
        c.width = PIPE_WIDTH
    return c


console = _console()
err_console = _console(stderr=True)

JSON_SCHEMA_VERSION = 1


def print_json(kind: str, payload: dict[str, Any]) -> None:
    """Machine-readable output: one JSON document with a versioned schema name."""
    doc = {"schema": f"ppgedge.{kind}/{JSON_SCHEMA_VERSION}", **payload}
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")


def status(stage: str, message: str, seconds: float | None = None) -> None:
    """One line per finished stage, Ultralytics-export style."""
    t = f" [dim]({seconds:.1f}s)[/dim]" if seconds is not None else ""
    console.print(f"[bold green]{safe_text(stage)}:[/bold green] {safe_text(message)}{t}")


def fmt_int(n: int | float) -> str:
    return f"{int(n):,}"


def fmt_si(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n:.0f}"


def metrics_table(title: str, rows: dict[str, dict[str, dict[str, float]]], group: str) -> Table:
    """One block per group value (activity, subject...), one row per model in it."""
    table = Table(title=safe_text(title), title_justify="left")
    for col, just in (
        (group, "left"),
        ("windows", "right"),
        ("model", "left"),
        ("MAE", "right"),
        ("RMSE", "right"),
        ("≤5 BPM", "right"),
    ):
        table.add_column(col, justify=just)
    names = list(rows)
    keys = list(rows[names[0]]) if names else []
    for key in keys:
        for i, name in enumerate(names):
            m = rows[name][key]
            table.add_row(
                safe_text(key) if i == 0 else "",
                fmt_int(m["n"]) if i == 0 else "",
                safe_text(name),
                f"{m['mae']:.2f}",
                f"{m['rmse']:.2f}",
                f"{100 * m['within5']:.0f}%",
                end_section=i == len(names) - 1,
            )
    return table


def coverage_table(cov: dict[str, Any]) -> Table:
    """Errors by the reference heart rate against the training recordings' range (bands
    without windows are left out)."""
    lo, hi = cov["trained_bpm"]
    label = {"below": f"below {lo}", "inside": f"{lo}-{hi} (trained)", "above": f"above {hi}"}
    keep = [b for b in label if cov["windows"].get(b)]
    rows = {m: {label[b]: bands[b] for b in keep} for m, bands in cov["models"].items()}
    return metrics_table("by reference heart rate", rows, "heart rate")
