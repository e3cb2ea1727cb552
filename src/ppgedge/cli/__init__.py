"""The ``ppgedge`` command line: a thin shell over the stage functions."""

from ppgedge.cli.app import app, main

__all__ = ["app", "main"]
