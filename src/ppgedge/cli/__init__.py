"""The ``ppgedge`` command line: a thin shell over the stage functions."""

from ppgedge.cli import profile_cmds  # noqa: F401  registers targets / profile / check
from ppgedge.cli.app import app, main, refuse_non_finite

refuse_non_finite(app)  # every command is registered now: NaN/inf refused for all of them

__all__ = ["app", "main"]
