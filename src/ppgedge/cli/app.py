"""Typer application: parse, call one stage function, render with Rich. No logic lives here."""

from __future__ import annotations

import functools
import inspect
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import typer
import typer.rich_utils

from ppgedge import __version__
from ppgedge.cli.render import (
    console,
    err_console,
    safe_text,
)
from ppgedge.errors import PpgedgeError

if not sys.stdout.isatty():  # --help in a pipe: wide enough that no option name is cut
    typer.rich_utils.MAX_WIDTH = typer.rich_utils.MAX_WIDTH or 160

HELP = {"help_option_names": ["-h", "--help"]}


def _usage_error_one_line(exc: Exception) -> None:
    """A usage error (unknown option, a value outside its choices, a missing argument) is one
    line on stderr like every other input error, not a boxed panel; exit code 2 stays."""
    if exc.__class__.__name__ == "NoArgsIsHelpError":  # the help itself was printed
        return
    ctx = getattr(exc, "ctx", None)
    hint = f" (see `{ctx.command_path} -h`)" if ctx is not None else ""
    message = exc.format_message()  # type: ignore[attr-defined]
    err_console.print(
        f"[bold red]error:[/bold red] {safe_text(message)}{safe_text(hint)}",
        highlight=False,
        soft_wrap=True,
    )


typer.rich_utils.rich_format_error = _usage_error_one_line  # typer calls it by module attribute

app = typer.Typer(
    context_settings=HELP,
    name="ppgedge",
    help="Distil a large PPG heart-rate model into a small int8 model for a Cortex-M wearable.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        console.print(f"ppgedge {__version__}")
        raise typer.Exit()


def _option_name(param: inspect.Parameter) -> str:
    decls = getattr(param.default, "param_decls", None) or ()
    long = [d for d in decls if d.startswith("--")]
    return max(long, key=len) if long else "--" + param.name.replace("_", "-")


def _finite_floats(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` refusing NaN and infinity in any float argument, naming the option."""
    sig = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for name, value in sig.bind_partial(*args, **kwargs).arguments.items():
            values = value if isinstance(value, list | tuple) else [value]
            for v in values:
                if isinstance(v, float) and not math.isfinite(v):
                    raise PpgedgeError(
                        f"{_option_name(sig.parameters[name])} {v}: must be a finite number"
                    )
        return func(*args, **kwargs)

    return wrapper


def refuse_non_finite(typer_app: typer.Typer) -> None:
    """Give every command of ``typer_app`` (and its sub-apps) the finite-float check: Python's
    ``float()`` accepts ``nan``, ``inf`` and ``1e999``, and one of them in a learning rate or a
    sample rate poisons a whole run, or fails long after it started, instead of failing at the
    door. Called once, after every command is registered (``ppgedge.cli``), so a float option
    added later is covered without anyone remembering to."""
    for info in typer_app.registered_commands:
        if info.callback is not None and not hasattr(info.callback, "__wrapped__"):
            info.callback = _finite_floats(info.callback)
    cb = typer_app.registered_callback
    if cb is not None and cb.callback is not None and not hasattr(cb.callback, "__wrapped__"):
        cb.callback = _finite_floats(cb.callback)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            refuse_non_finite(group.typer_instance)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="CPU threads for PyTorch and BLAS (default: one per core; cap it on shared cores).",
    ),
) -> None:
    """Distil, compress and deploy PPG heart-rate models to Cortex-M wearables."""
    if threads is not None:
        from ppgedge.threads import limit_threads

        limit_threads(threads)


# ------------------------------------------------------------------ shared by commands
# Fixed value sets are choices: a typo is caught at parse time and completion works. They are
# spelled out here (the modules that define them import torch); tests/test_cli.py checks each
# equals the library's own list.
ImportKind = Literal["spc2015", "dalia", "bami", "generic"]
DistillMethod = Literal["hard", "soft", "dkd", "feature", "progressive"]
FinetuneMethod = Literal["hard", "soft", "dkd", "feature"]  # prune --teacher, progressive steps
QatMethod = Literal["hard", "soft", "dkd"]
PruneCriterion = Literal["l1", "l2", "taylor"]
TimeStretch = Literal["both", "slower", "off"]  # train/distill --time-stretch
SplitPart = Literal["train", "val", "all"]
EvalPart = Literal["auto", "train", "val", "test", "all"]
Device = Literal["auto", "cpu", "cuda"]
Engine = Literal["local", "ray"]  # ppgedge sweep
IMPORT_KINDS, DISTILL_METHODS, FINETUNE_METHODS, QAT_METHODS, PRUNE_CRITERIA = (
    get_args(t) for t in (ImportKind, DistillMethod, FinetuneMethod, QatMethod, PruneCriterion)
)
TIME_STRETCH_MODES = get_args(TimeStretch)
TIME_STRETCH = typer.Option(
    "both",
    "--time-stretch",
    help="Label-scaled time stretch: both (sped up and slowed down), slower, off.",
)

DEVICE = typer.Option("auto", "--device", help="auto: CUDA when available.")
CHANNELS = typer.Option("all", "--channels", help="all, ppg, acc, or a list like ppg,acc_x.")


def dataset_for(checkpoint: Path, dataset: Path | None):
    """The dataset a checkpoint was trained on, unless another is named."""
    from ppgedge.data.format import Dataset
    from ppgedge.models.checkpoint import load_checkpoint

    if dataset is not None:
        return Dataset(dataset)
    recorded = load_checkpoint(checkpoint).training.get("dataset")
    if not recorded or not Path(recorded).exists():
        raise PpgedgeError(
            f"{checkpoint}: its training dataset is not recorded or gone: pass --data DATASET"
        )
    return Dataset(recorded)


def _quiet_third_party_logs() -> None:
    """The libraries' start-up notices (torchao's optional CUDA kernels, torch's pytree
    deprecation, TensorFlow's oneDNN and converter info lines) are not for our users; their
    warnings and errors still show."""
    import logging
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)


def install_interrupt_handlers() -> None:
    """Ctrl-C is recorded (the run stops at its next check even where a library swallows the
    KeyboardInterrupt) and raised as usual. Where it lands inside a garbage-collection callback
    or a ``__del__`` (JAX registers one), Python cannot raise it and prints "Exception ignored
    in ... Traceback" instead: that case is silent here, since the interrupt is recorded."""
    import signal

    from ppgedge.errors import note_interrupt

    def _on_sigint(signum: int, frame: object) -> None:
        note_interrupt()
        signal.default_int_handler(signum, frame)

    def _unraisable(unraisable: sys.UnraisableHookArgs) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            return
        sys.__unraisablehook__(unraisable)

    signal.signal(signal.SIGINT, _on_sigint)
    sys.unraisablehook = _unraisable


def main(args: Sequence[str] | None = None, prog_name: str | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2. ``args`` and
    ``prog_name`` default to the command line; the tests pass them to run a command in-process
    with the same error handling."""
    _quiet_third_party_logs()
    install_interrupt_handlers()
    try:
        app(args=args, prog_name=prog_name)
    except PpgedgeError as exc:
        # a message quotes file names, keys and subject names: newlines, ESC and other controls
        # become visible escapes (one line, no terminal control) and markup is not interpreted
        err_console.print(
            f"[bold red]error:[/bold red] {safe_text(exc)}", highlight=False, soft_wrap=True
        )
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted: rerun the same command to resume", highlight=False)
        sys.exit(130)
    except SystemExit as exc:  # typer turns Ctrl-C into a silent exit 130: say what to do
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, KeyboardInterrupt):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            err_console.print("interrupted: rerun the same command to resume", highlight=False)
        raise
