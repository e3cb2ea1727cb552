"""Piped tables (CI logs): 80 columns when the cells fit there wrapped at spaces, never a word,
an indent or a figure cut; a table that cannot fit keeps its natural width, uncut."""

from __future__ import annotations

import io

from rich.table import Table

from ppgedge.cli.render import PIPE_TABLE_WIDTH, PIPE_WIDTH, SafeConsole


def _piped(table: Table) -> list[str]:
    out = io.StringIO()
    console = SafeConsole(file=out, force_terminal=False, color_system=None, width=PIPE_WIDTH)
    console.print(table)
    return [line.rstrip() for line in out.getvalue().splitlines()]


def _layers(n_columns: int) -> Table:
    table = Table(title="Per layer")
    table.add_column("op")
    table.add_column("note")
    for k in range(n_columns):
        table.add_column(f"bytes {k}", justify="right")
    table.add_row("FULLY_CONNECTED", "a long note that can wrap at its spaces " * 3,
                  *(f"{1000 * k + 176:,} B" for k in range(n_columns)))  # fmt: skip
    table.add_row("  activations (TFLM plan)", "x", *("97.92 k" for _ in range(n_columns)))
    return table


def test_a_table_that_fits_wraps_into_80_columns_cutting_nothing() -> None:
    lines = _piped(_layers(3))
    assert max(len(line) for line in lines) <= PIPE_TABLE_WIDTH
    text = "\n".join(lines)
    assert "FULLY_CONNECTED" in text and "  activations" in text and "…" not in text
    assert all(f"{1000 * k + 176:,} B" in text for k in range(3)) and "97.92 k" in text
    assert sum("a long note" in line for line in lines) == 3  # wrapped, not cut


def test_a_table_too_wide_for_80_columns_keeps_its_natural_width_uncut() -> None:
    lines = _piped(_layers(9))
    text = "\n".join(lines)
    assert "FULLY_CONNECTED" in text and "…" not in text
    assert all(f"{1000 * k + 176:,} B" in text for k in range(9))
    assert sum("a long note" in line for line in lines) == 1  # one line, as wide as it needs


def test_a_narrow_table_keeps_its_natural_width() -> None:
    table = Table()
    table.add_column("a")
    table.add_row("b")
    assert max(len(line) for line in _piped(table)) < 10
