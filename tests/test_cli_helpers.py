"""The in-process runner the CLI tests use gives what the real process gives."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
from cli_helpers import ppgedge, ppgedge_process


def _cases(tmp_path: Path) -> list[tuple[str, ...]]:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    return [
        ("--version",),
        ("--help",),
        ("targets", "-h"),
        ("targets", "--json"),
        ("data", "info", str(tmp_path / "nope")),  # a user error: one line, exit 2
        ("data", "info", "--bogus"),  # a usage error
        ("distill", "d.ppgds", "-t", "t.pt", "-s", "resnet_micro", "--method", "dkdd"),
        ("eval", str(junk), str(tmp_path)),  # a user error after torch is imported
        ("profile", str(junk), "-t", "nrf52840"),
    ]


@pytest.mark.parametrize("index", range(9))
def test_in_process_equals_the_real_process(index: int, tmp_path: Path) -> None:
    args = _cases(tmp_path)[index]
    cwd = Path.cwd()
    env, sigint, threads = dict(os.environ), signal.getsignal(signal.SIGINT), _threads()
    inside, real = ppgedge(*args), ppgedge_process(*args)
    assert (inside.returncode, inside.stdout, inside.stderr) == (
        real.returncode,
        real.stdout,
        real.stderr,
    ), args
    assert dict(os.environ) == env and Path.cwd() == cwd  # nothing the call changed is left
    assert signal.getsignal(signal.SIGINT) == sigint and _threads() == threads


def test_an_escaping_exception_is_a_traceback_and_exit_1(monkeypatch) -> None:
    app_module = sys.modules["ppgedge.cli.app"]  # ppgedge.cli.app is also the Typer

    def boom(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(app_module, "app", boom)
    proc = ppgedge("targets")
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "unexpected" in proc.stderr


def _threads() -> int | None:
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None
