"""Importers: every supported source becomes the one dataset format (:mod:`..format`).

Each importer reads its files into :class:`~ppgedge.data.windowing.Recording` objects at their
native rates and hands them to :func:`~ppgedge.data.windowing.window_recordings`, so resampling,
windowing and labelling are the same for every source. Bad input raises
:class:`~ppgedge.errors.PpgedgeError` with a one-line message, never a library traceback.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ppgedge.data.format import DataFormat, WindowedData
from ppgedge.data.importers.bami import import_bami
from ppgedge.data.importers.dalia import import_dalia
from ppgedge.data.importers.generic import import_generic
from ppgedge.data.importers.spc2015 import import_spc2015
from ppgedge.errors import PpgedgeError

FORMATS = ("spc2015", "dalia", "bami", "generic")
IMPORTERS: dict[str, Callable[..., WindowedData]] = {
    "spc2015": import_spc2015,
    "dalia": import_dalia,
    "bami": import_bami,
    "generic": import_generic,
}


def importer_options(kind: str) -> dict[str, Any]:
    """The options ``kind`` accepts (beyond path, fmt, drop_out_of_range) and their defaults."""
    sig = inspect.signature(IMPORTERS[kind])
    return {
        name: p.default
        for name, p in sig.parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "drop_out_of_range"
    }


def import_dataset(
    kind: str,
    path: str | Path,
    fmt: DataFormat | None = None,
    *,
    drop_out_of_range: bool = False,
    **options: Any,
) -> WindowedData:
    """Import ``path`` as format ``kind`` (one of :data:`FORMATS`) into windows of ``fmt``."""
    if kind not in IMPORTERS:
        raise PpgedgeError(f"unknown dataset format '{kind}': use one of {', '.join(FORMATS)}")
    allowed = importer_options(kind)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        accepts = ", ".join(allowed) if allowed else "no options"
        raise PpgedgeError(
            f"format '{kind}' has no option(s) {', '.join(unknown)}: it accepts {accepts}"
        )
    return IMPORTERS[kind](
        path, fmt or DataFormat(), drop_out_of_range=drop_out_of_range, **options
    )


__all__ = ["FORMATS", "IMPORTERS", "import_dataset", "importer_options"]
