"""User-facing errors.

Every problem caused by the user's input (a missing file, a corrupt dataset, NaN samples, an
unknown model name) is raised as :class:`PpgedgeError`. The CLI turns it into a one-line message
and exit code 2, with no traceback; anything else is a bug and keeps its traceback.
"""


class PpgedgeError(Exception):
    """An input problem the user can fix; the message says what is wrong and what to do."""

    exit_code = 2
