"""User-facing errors.

Every problem caused by the user's input (a missing file, a corrupt dataset, NaN samples, an
unknown model name) is raised as :class:`PpgedgeError`. The CLI turns it into a one-line message
and exit code 2, with no traceback; anything else is a bug and keeps its traceback.
"""


class PpgedgeError(Exception):
    """An input problem the user can fix; the message says what is wrong and what to do."""

    exit_code = 2


# Ctrl-C bookkeeping. Native code (converters, interpreters) can swallow the KeyboardInterrupt
# that Python raises for SIGINT; the CLI's handler also records it here, so long-running drivers
# (``ppgedge run``) stop at the next stage boundary even when a library ate the exception.
_interrupted = False


def note_interrupt() -> None:
    global _interrupted
    _interrupted = True


def interrupt_noted() -> bool:
    """Whether SIGINT arrived in this process (raised or swallowed)."""
    return _interrupted


def check_interrupt() -> None:
    """Raise KeyboardInterrupt if SIGINT arrived, whether or not it was swallowed."""
    if _interrupted:
        raise KeyboardInterrupt
