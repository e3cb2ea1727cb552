"""Rich rendering shared by the commands: tables, status lines, training progress."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.measure import Measurement
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

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if len(objects) == 1 and isinstance(objects[0], Table) and not self.is_terminal:
            self._fit_piped_table(objects[0])
        super().print(*objects, **kwargs)

    def _unbroken(self, cell: Any, justify: str = "left") -> Measurement:
        """A cell's narrowest width without cutting a word, its indent or a short figure."""
        size = Measurement.get(self, self.options, cell)
        plain = cell.plain if isinstance(cell, Text) else str(cell)
        if justify == "right" and size.maximum <= SHORT_FIGURE:  # "97.92 k", "1,176 B"
            return Measurement(size.maximum, size.maximum)
        indent = len(plain) - len(plain.lstrip(" "))
        return Measurement(min(size.minimum + indent, size.maximum), size.maximum)

    def _fit_piped_table(self, table: Table) -> None:
        """Lay a piped table out in PIPE_TABLE_WIDTH columns when it fits there with its cells
        wrapped at spaces; else leave it at its natural width. Rich's own narrowing would cut
        the widest columns below their longest word (``FULLY_CON|NECTED``)."""
        spans = []  # per column: narrowest width that cuts nothing, natural width
        for column in table.columns:
            sizes = [self._unbroken(column.header)]
            sizes += [self._unbroken(cell, column.justify) for cell in column.cells]
            spans.append((max(m.minimum for m in sizes), max(m.maximum for m in sizes)))
        natural = Measurement.get(self, self.options, table).maximum
        frame = natural - sum(hi for _, hi in spans)  # borders and padding
        spare = PIPE_TABLE_WIDTH - frame - sum(lo for lo, _ in spans)
        if natural <= PIPE_TABLE_WIDTH or spare < 0:
            return
        slack = sum(hi - lo for lo, hi in spans)  # > spare, since natural > PIPE_TABLE_WIDTH
        given = 0
        for k, (column, (lo, hi)) in enumerate(zip(table.columns, spans, strict=True)):
            share = spare - given if k == len(spans) - 1 else spare * (hi - lo) // slack
            share = min(share, hi - lo)
            given += share
            column.width, column.overflow = lo + share, "fold"


# Piped output (every CI log) is read in a browser or a file, not a terminal. Prose lines are
# never wrapped, so a printed command or path can be pasted whole; a table is laid out in 80
# columns when it fits there without cutting anything, else at its natural width
# (SafeConsole.print). A terminal keeps its own width.
PIPE_WIDTH = 10_000
PIPE_TABLE_WIDTH = 80
SHORT_FIGURE = 12  # a right-aligned cell this wide is a figure with its unit: never wrapped


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
