"""Load pickles of plain data (dicts, lists, numpy arrays) without letting them run code.

A pickle is a small program: ``pickle.load`` imports and calls whatever the file names, so a
downloaded ``SX.pkl`` could call ``os.system``. :class:`SafeUnpickler` resolves globals from a
fixed allow-list of objects (never by importing the names the file asks for): the few numpy
constructors an ndarray needs, a latin-1-only stand-in for ``_codecs.encode`` (how protocol-2
pickles written by Python 3 store bytes) and pure data builtins. Anything else raises
:class:`~ppgedge.errors.PpgedgeError`. Object arrays are refused too, so every value that comes
back is a container, a string, a number or a numeric array.
"""

from __future__ import annotations

import _compat_pickle
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ppgedge.errors import PpgedgeError

DEFAULT_MAX_BYTES = 4 << 30  # a PPG-DaLiA subject file is well under 1 GiB

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """``_codecs.encode`` restricted to the one codec protocol-2 pickles use for bytes."""
    if encoding.lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1"):
        raise PpgedgeError(
            f"refusing to unpickle _codecs.encode with codec {encoding!r}: only latin-1 "
            "byte strings are allowed"
        )
    return text.encode("latin1", errors)


def _dtype(*args: Any) -> np.dtype:
    """``numpy.dtype`` that refuses object dtypes (their items are arbitrary objects)."""
    dt = np.dtype(*args)
    if dt.hasobject:
        raise PpgedgeError(
            "refusing to unpickle an object-dtype numpy array: only numeric and string arrays "
            "are allowed"
        )
    return dt


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
}


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """Map Python 2 names (``__builtin__``, ``copy_reg``) to Python 3 ones, as pickle does."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class SafeUnpickler(pickle.Unpickler):
    """An unpickler whose globals come only from :data:`_ALLOWED`; nothing is imported."""

    def find_class(self, module: str, name: str) -> Any:
        key = _python3_name(module, name)
        try:
            return _ALLOWED[key]
        except KeyError:
            raise PpgedgeError(
                f"refusing to unpickle {key[0]}.{key[1]}: the file asks to run code, which a "
                "data file never needs; use the original dataset file from a trusted source"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise PpgedgeError("refusing to unpickle a persistent reference: not a plain data file")


_CORRUPT = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    OverflowError,
    UnicodeError,
    MemoryError,
    RecursionError,
)


def safe_load(
    path: str | os.PathLike[str], *, encoding: str = "latin1", max_bytes: int = DEFAULT_MAX_BYTES
) -> object:
    """Unpickle ``path`` with :class:`SafeUnpickler`; every failure is a :class:`PpgedgeError`.

    ``encoding="latin1"`` reads Python 2 pickles (PPG-DaLiA) whose numpy payloads are ``str``.
    """
    path = Path(path)
    if not path.is_file():
        raise PpgedgeError(f"{path}: no such file: check the path")
    size = path.stat().st_size
    if size > max_bytes:
        raise PpgedgeError(
            f"{path}: {size / 2**30:.1f} GiB is larger than the {max_bytes / 2**30:.1f} GiB "
            "limit for a pickle: check this is the right file or raise max_bytes"
        )
    try:
        with open(path, "rb") as fh:
            return SafeUnpickler(fh, encoding=encoding).load()
    except PpgedgeError as exc:
        raise PpgedgeError(f"{path}: {exc}") from None
    except OSError as exc:
        raise PpgedgeError(f"{path}: cannot read ({exc.strerror or exc}): check the file") from None
    except _CORRUPT as exc:
        raise PpgedgeError(
            f"{path}: not a readable pickle ({exc.__class__.__name__}: {str(exc)[:120]}): "
            "the file is corrupt or truncated; download it again"
        ) from None
