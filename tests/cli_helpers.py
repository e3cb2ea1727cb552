"""Running the command line, and the shape every user error must have.

:func:`ppgedge` runs a command in this process through the console script's own entry function
(``ppgedge.cli.main``: the same parsing, the same one-line error handling and exit codes), with
the environment a subprocess would get. It saves a Python start and a torch import per call,
about 2.4 CPU-s each, over some 150 calls. :func:`ppgedge_process` runs the real ``python -m
ppgedge``, for what only a process shows (start-up imports, signals, threads, the
interpreter's own output); tests/test_cli_helpers.py checks that the two give the same
result."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import traceback
from pathlib import Path

ENV = {"COLUMNS": "120", "PATH": "", "OMP_NUM_THREADS": "1"}  # two workers, two cores


def ppgedge_process(
    *args: object, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ppgedge", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        env={**ENV, **(env or {})},
    )


def ppgedge(
    *args: object, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``ppgedge ARGS`` in-process, returned as a finished process: its exit code and output.

    What a command may change for the whole process is put back afterwards: the environment
    (:data:`ENV` and ``env`` for the call, as a subprocess gets), the working directory, the
    SIGINT handler and unraisable hook ``main`` installs, and torch's thread count. An exception
    that escapes ``main`` is what a process would print as a traceback with exit code 1."""
    import typer.rich_utils

    from ppgedge.cli import main

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_sigint, saved_hook = signal.getsignal(signal.SIGINT), sys.unraisablehook
    saved_threads = torch_threads()  # None: torch not imported yet, nothing to put back
    saved_force = typer.rich_utils.FORCE_TERMINAL  # read from GITHUB_ACTIONS etc. at import
    code: int = 0
    try:
        os.environ.clear()
        os.environ.update({**ENV, **(env or {})})
        typer.rich_utils.FORCE_TERMINAL = None  # what a process started with ENV would read
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(argv, prog_name="python -m ppgedge")  # as `python -m` names it
            except SystemExit as exc:
                code = _exit_code(exc.code, err)
            except BaseException:  # noqa: BLE001  the traceback a process would print
                traceback.print_exc()
                code = 1
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        signal.signal(signal.SIGINT, saved_sigint)
        sys.unraisablehook = saved_hook
        typer.rich_utils.FORCE_TERMINAL = saved_force
        if saved_threads is not None:
            sys.modules["torch"].set_num_threads(saved_threads)
    return subprocess.CompletedProcess(["ppgedge", *argv], code, out.getvalue(), err.getvalue())


def torch_threads() -> int | None:
    """torch's thread count, or None while this process has not imported torch."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


def _exit_code(code: object, err: io.StringIO) -> int:
    """The exit status ``sys.exit(code)`` gives a process (a string is printed, status 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=err)
    return 1


def assert_user_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert needle in proc.stderr
