"""The ``ppgedge`` command line: a thin shell over the stage functions, one module per stage.

Importing it registers every command; none of these modules imports torch or the converter
stack at import time (each command imports its stage when it runs), so ``targets``,
``profile``, ``check``, ``--help`` and ``--version`` start fast.
"""

from ppgedge.cli import (  # noqa: F401  each module registers its commands on the app
    compress_cmds,
    data_cmds,
    export_cmds,
    personalize_cmds,
    profile_cmds,
    run_cmds,
    train_cmds,
)
from ppgedge.cli.app import app, main, refuse_non_finite

refuse_non_finite(app)  # every command is registered now: NaN/inf refused for all of them

__all__ = ["app", "main"]
