"""The ``ppgedge`` command line: a thin shell over the stage functions."""

from ppgedge.cli import profile_cmds  # noqa: F401  registers targets / profile / check
from ppgedge.cli.app import app, main

__all__ = ["app", "main"]
