"""The in-process runner the CLI tests use gives what the real process gives."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
from cli_helpers import ppgedge, ppgedge_process, torch_threads

CASES = [  # {tmp}: the test's temporary folder, which holds junk.pt
    "--version",
    "--help",
    "targets -h",
    "--threads 3 targets --json",  # sets the thread variables and torch's count: put back
    "data info {tmp}/nope",  # a user error: one line, exit 2
    "data info --bogus",  # a usage error
    "distill d.ppgds -t t.pt -s resnet_micro --method dkdd",  # a value outside its choices
    "eval {tmp}/junk.pt {tmp}",  # a user error after torch is imported
    "profile {tmp}/junk.pt -t nrf52840",
]


@pytest.mark.parametrize("case", CASES)
def test_in_process_equals_the_real_process(case: str, tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    args = case.format(tmp=tmp_path).split()
    cwd = Path.cwd()
    env, sigint, threads = dict(os.environ), signal.getsignal(signal.SIGINT), torch_threads()
    inside, real = ppgedge(*args), ppgedge_process(*args)
    assert (inside.returncode, inside.stdout, inside.stderr) == (
        real.returncode,
        real.stdout,
        real.stderr,
    ), args
    assert dict(os.environ) == env and Path.cwd() == cwd  # nothing the call changed is left
    assert signal.getsignal(signal.SIGINT) == sigint and torch_threads() == threads


def test_an_escaping_exception_is_a_traceback_and_exit_1(monkeypatch) -> None:
    app_module = sys.modules["ppgedge.cli.app"]  # ppgedge.cli.app is also the Typer

    def boom(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(app_module, "app", boom)
    proc = ppgedge("targets")
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "unexpected" in proc.stderr
