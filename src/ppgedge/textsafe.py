"""Making user-provided text safe to show: terminal, Rich markup, Markdown, CI logs.

Subject names, file names, config strings and target profiles come from elsewhere. Printed raw,
an ESC byte can rewrite a terminal or a CI log line (colours, cursor moves, hidden text, OSC 8
links), a bidi override can make a name read backwards, and Rich markup such as ``[link=...]`` or
``[/bold]`` is interpreted (or raises). Everything user-provided goes through one of these
functions before it is printed or written into a report. Standard library only, so the profiler
(which imports no training stack) can use it.
"""

from __future__ import annotations

import re
import unicodedata

# Unicode categories that never belong in a name: controls (Cc: ESC, BEL, CR, ...), format
# characters (Cf: bidi overrides, zero-width joiners), line/paragraph separators, surrogates,
# unassigned and private-use code points.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: object, *, keep: str = "") -> str:
    """``text`` with every control or invisible formatting character written as a visible
    ``\\xNN`` / ``\\uNNNN`` escape (characters in ``keep``, e.g. ``"\\n\\t"``, stay)."""
    s = str(text)
    if s.isprintable() and not any(ch in s for ch in "\u2028\u2029"):
        return s
    return "".join(
        ch if ch in keep or unicodedata.category(ch) not in _HIDDEN else _escape_char(ch)
        for ch in s
    )


def is_printable(text: str) -> bool:
    """True when ``text`` holds no control or invisible formatting character."""
    return printable(text) == text


def safe_text(text: object) -> str:
    """A user-provided string ready to interpolate into Rich markup: controls made visible
    (newlines included, so it stays on one line), markup escaped."""
    from rich.markup import escape

    return escape(printable(text))


def markdown_text(text: object) -> str:
    """A user-provided string for Markdown (report.md, PR comments): controls made visible,
    Markdown and HTML syntax backslash-escaped, so a name cannot add links, images or tables."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", printable(text))
