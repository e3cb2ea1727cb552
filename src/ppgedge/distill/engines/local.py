"""The local engine: one cell after another in this process."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from ppgedge.distill.grid import Cell, CellOutcome, SweepContext, error_line, run_cell
from ppgedge.errors import PpgedgeError


def run_local(
    cells: Sequence[Cell], ctx: SweepContext, models_dir: Path, *, retries: int = 2
) -> Iterator[CellOutcome]:
    """Run each cell here, retrying an unexpected failure up to ``retries`` times.

    A :class:`PpgedgeError` (bad input) is not retried: it would fail the same way again.
    Ctrl-C propagates at once; cells already yielded are the caller's to keep.
    """
    for cell in cells:
        attempts = 0
        while True:
            attempts += 1
            try:
                row = run_cell(cell, ctx, models_dir / f"{cell.key}.pt")
            except PpgedgeError as exc:
                yield CellOutcome(cell, error=error_line(exc), attempts=attempts)
                break
            except Exception as exc:  # noqa: BLE001 - reported in the summary, never dropped
                if attempts <= retries:
                    continue
                yield CellOutcome(cell, error=error_line(exc), attempts=attempts)
                break
            yield CellOutcome(cell, row=row, attempts=attempts)
            break
