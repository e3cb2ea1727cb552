"""Training progress for the commands that train: a bar per epoch, a line per finished epoch.

Its own module because it needs the trainer (and so torch): the fast commands (``targets``,
``profile``, ``check``, ``--help``) import the CLI without it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ppgedge.cli.render import console, safe_text
from ppgedge.train.trainer import EpochReport, TrainingObserver


class RichTrainingObserver(TrainingObserver):
    """A progress bar per epoch with running loss, and a line per finished epoch."""

    def __init__(self, label: str = "train") -> None:
        self.label = safe_text(label)
        self.progress = Progress(
            TextColumn("[bold blue]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.task = None

    def start(self, total_epochs: int, batches_per_epoch: int, first_epoch: int) -> None:
        self.total_epochs, self.batches = total_epochs, batches_per_epoch
        if first_epoch:
            console.print(f"[yellow]resuming after epoch {first_epoch}[/yellow]")
        self.progress.start()
        self.task = self.progress.add_task(
            f"{self.label} epoch {first_epoch + 1}/{total_epochs}", total=batches_per_epoch, info=""
        )

    def batch(self, loss: float) -> None:
        self.progress.update(self.task, advance=1, info=f"loss {loss:.3f}")

    def epoch(self, r: EpochReport) -> None:
        self.progress.console.print(
            f"  {self.label} epoch {r.epoch:>3}/{r.epochs}  loss {r.train_loss:.3f}  "
            f"val MAE {r.val_mae:6.2f}  best {r.best_val_mae:6.2f}  [dim]{r.seconds:.1f}s[/dim]"
        )
        self.progress.reset(
            self.task,
            total=self.batches,
            description=f"{self.label} epoch {r.epoch + 1}/{r.epochs}",
        )

    def close(self) -> None:
        if self.task is not None:  # stopping a display never started still prints a newline
            self.progress.stop()


@contextlib.contextmanager
def training_progress(label: str, quiet: bool) -> Iterator[RichTrainingObserver | None]:
    """The display of one training command (none with ``--json``), closed however it ends."""
    observer = None if quiet else RichTrainingObserver(label)
    try:
        yield observer
    finally:
        if observer is not None:
            observer.close()
