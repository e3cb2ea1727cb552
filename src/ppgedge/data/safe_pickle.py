"""Load pickles of plain data (dicts, lists, numpy arrays) without letting them run code.

A pickle is a small program: ``pickle.load`` imports and calls whatever the file names, so a
downloaded ``SX.pkl`` could call ``os.system``. :class:`SafeUnpickler` resolves globals from a
fixed allow-list of objects (never by importing the names the file asks for): the few numpy
constructors an ndarray needs, a latin-1-only stand-in for ``_codecs.encode`` (how protocol-2
pickles written by Python 3 store bytes) and pure data builtins. Anything else raises
:class:`~ppgedge.errors.PpgedgeError`. Object arrays are refused too, so every value that comes
back is a container, a string, a number or a numeric array.

numpy's own ``dtype.__setstate__`` and ``ndarray.__setstate__`` trust their arguments: a crafted
dtype state can set the "holds Python objects" flags on a float64 dtype, which makes numpy treat
raw bytes as object pointers. So the pickle never reaches them with its own state: a dtype is
rebuilt from its type code alone (plain numbers and strings only), and an array's state is
checked (shape, dtype, data length) before numpy sees it.

Unpickling itself is linear in the file size (no opcode multiplies anything), but a memo
reference is free: a 50 KB pickle can hold a list that names one array 100,000 times, and
``numpy.asarray`` on it then builds gigabytes. :func:`materialised_size` counts what a value
would become if every shared reference were copied, in one pass over the distinct objects, and
:func:`safe_load` refuses a file where sharing adds more than :data:`MAX_SHARED_ELEMENTS`
elements to what the file itself holds (a real data file shares nothing but small objects).
"""

from __future__ import annotations

import _compat_pickle
import math
import os
import pickle
import re
import struct
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ppgedge.errors import PpgedgeError

DEFAULT_MAX_BYTES = 4 << 30  # a PPG-DaLiA subject file is well under 1 GiB
# Elements that shared references may add once materialised: 4 M (32 MB as float64). A real data
# file repeats only small objects (dtypes, short strings); repeated arrays are an attack.
MAX_SHARED_ELEMENTS = 1 << 22
MAX_NESTING = 32  # containers in containers: real files nest a few levels, numpy takes 64 dims


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """``_codecs.encode`` restricted to the one codec protocol-2 pickles use for bytes."""
    if encoding.lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1"):
        raise PpgedgeError(
            f"refusing to unpickle _codecs.encode with codec {encoding!r}: only latin-1 "
            "byte strings are allowed"
        )
    return text.encode("latin1", errors)


_DTYPE_CODE = re.compile(r"[<>|=]?([biufcSUO])(\d*)")
MAX_ARRAY_ITEMS = 1 << 40


def _refuse(what: str) -> PpgedgeError:
    return PpgedgeError(f"refusing to unpickle {what}: only numeric and string arrays are allowed")


class _DtypeRecipe:
    """Stands in for ``numpy.dtype(code, align, copy)`` and its pickled state; becomes a real
    dtype in :meth:`resolve`, built from the type code alone (the state's flags are ignored)."""

    def __init__(self, code: Any = None, *args: Any) -> None:
        self.code = code
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def resolve(self) -> np.dtype:
        code = self.code.decode("latin1") if isinstance(self.code, bytes) else self.code
        m = _DTYPE_CODE.fullmatch(code) if isinstance(code, str) else None
        if m is None:
            raise _refuse(f"numpy dtype {str(code)[:40]!r}")
        if m[1] == "O":
            raise _refuse("an object-dtype numpy array")
        dt = np.dtype(m[1] + m[2])
        st = self.state
        if st is not None:
            if not isinstance(st, tuple) or len(st) < 6 or st[2:5] != (None, None, None):
                raise _refuse("a structured or malformed numpy dtype")
            if st[1] in ("<", ">") and dt.itemsize > 1 and dt.kind != "S":
                dt = dt.newbyteorder(st[1])
        return dt


def _resolved(dt: Any) -> np.dtype:
    if not isinstance(dt, _DtypeRecipe):
        raise _refuse(f"an array whose dtype is a {type(dt).__name__}")
    return dt.resolve()


def _raw_bytes(data: Any, n_bytes: int, what: str) -> bytes:
    if isinstance(data, str):  # Python 2 ``str`` payloads, decoded as latin-1
        data = data.encode("latin1")
    if not isinstance(data, bytes | bytearray) or len(data) != n_bytes:
        size = len(data) if isinstance(data, bytes | bytearray) else type(data).__name__
        raise PpgedgeError(f"corrupt {what}: {size} bytes of data where {n_bytes} are needed")
    return bytes(data)


class _CheckedArray(np.ndarray):
    """What ``_reconstruct`` returns: an ndarray whose pickled state is checked first."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise PpgedgeError("corrupt numpy array state")
        if len(state) == 5 and state[0] != 1:
            raise PpgedgeError(f"numpy array state version {state[0]!r} is not 1")
        shape, dt, fortran, data = state[-4:]
        dtype = _resolved(dt)
        if not isinstance(shape, tuple) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise PpgedgeError(f"corrupt numpy array shape {str(shape)[:60]}")
        n = math.prod(shape)
        if n > MAX_ARRAY_ITEMS:
            raise PpgedgeError(f"numpy array of shape {shape} is too large")
        raw = _raw_bytes(data, n * dtype.itemsize, "numpy array")
        super().__setstate__((1, shape, dtype, bool(fortran), raw))


class _NdarrayName:
    """Stands for ``numpy.ndarray`` in a pickle: an argument of ``_reconstruct``, never built
    directly (``NEWOBJ`` + ``BUILD`` would hand the pickle's state to numpy unchecked)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        raise _refuse("numpy.ndarray.__new__")


def _reconstruct(cls: Any, shape: Any = (0,), code: Any = b"b") -> np.ndarray:
    if cls is not _NdarrayName:
        raise _refuse(f"an array of class {getattr(cls, '__name__', cls)!r}")
    return np.ndarray.__new__(_CheckedArray, (0,), np.uint8)


def _scalar(dt: Any, data: Any = None) -> Any:
    dtype = _resolved(dt)
    return np.frombuffer(_raw_bytes(data, dtype.itemsize, "numpy scalar"), dtype)[0]


def _bytearray(data: Any = b"", *args: Any) -> bytearray:
    """``bytearray`` of given bytes only: ``bytearray(2**33)`` would zero-fill 8 GiB."""
    if not isinstance(data, bytes | str):
        raise _refuse(f"bytearray({type(data).__name__})")
    return bytearray(data.encode("latin1") if isinstance(data, str) else data)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy", "ndarray"): _NdarrayName,
    ("numpy", "dtype"): _DtypeRecipe,
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): _bytearray,
}


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """Map Python 2 names (``__builtin__``, ``copy_reg``) to Python 3 ones, as pickle does."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class SafeUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """An unpickler whose globals come only from :data:`_ALLOWED`; nothing is imported.

    It is pickle's pure-Python unpickler: the C one grows its memo table to the largest index a
    ``LONG_BINPUT`` names, so a 40 KB file asking for index 2**30 allocates and zeroes gigabytes.
    Here the memo is a dict. Data files hold a few large arrays, so the speed is the same.
    """

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


def _children(obj: Any) -> tuple[Any, ...] | None:
    """The references a container holds (``None`` for a leaf)."""
    if isinstance(obj, list | tuple | set | frozenset):
        return tuple(obj)
    if isinstance(obj, dict):
        return tuple(x for kv in obj.items() for x in kv)
    return None


def _leaf_size(obj: Any) -> int:
    """Elements a leaf stands for: an array's items, a string's length / 8, else 1."""
    if isinstance(obj, np.ndarray):
        return max(int(obj.size), 1)
    if isinstance(obj, str | bytes | bytearray):
        return 1 + len(obj) // 8
    return 1


class Materialised(NamedTuple):
    """What a value holds, counted in elements (see :func:`materialised_size`)."""

    distinct: int  # each object once: what is in memory now
    expanded: int  # each object at every reference: what copying the value would build
    depth: int  # nesting of containers (1 for a leaf)


def materialised_size(root: object, limit: int = 1 << 62) -> Materialised:
    """Count ``root``'s elements once per object and once per reference; the two are equal when
    nothing is shared, and ``expanded`` is what ``numpy.asarray`` on nested lists (or printing
    the value) would build.

    One iterative pass over the distinct objects, so linear in the file size and safe against
    deep nesting; ``expanded`` saturates at ``limit`` so the sums stay machine-sized. A reference
    cycle is refused: materialising it would never end.
    """
    sizes: dict[int, tuple[int, int]] = {}  # id -> (expanded, depth); root keeps objects alive
    on_path: set[int] = set()
    distinct = 0
    stack: list[tuple[Any, tuple[Any, ...] | None]] = [(root, None)]
    while stack:
        obj, kids = stack[-1]
        key = id(obj)
        if kids is None:  # first visit
            if key in sizes:
                stack.pop()
                continue
            kids = _children(obj)
            if kids is None:
                sizes[key] = (_leaf_size(obj), 1)
                distinct += sizes[key][0]
                stack.pop()
                continue
            on_path.add(key)
            stack[-1] = (obj, kids)
            for kid in kids:
                if id(kid) in on_path:
                    raise PpgedgeError(
                        "refusing to unpickle a container that contains itself (a reference "
                        "cycle): not a plain data file"
                    )
                if id(kid) not in sizes:
                    stack.append((kid, None))
            continue
        stack.pop()  # every kid is counted now
        on_path.discard(key)
        total, depth = 1 + len(kids), 0
        for kid in kids:
            size, kid_depth = sizes[id(kid)]
            total, depth = min(total + size, limit), max(depth, kid_depth)
        sizes[key] = (total, depth + 1)
        distinct += 1 + len(kids)
    expanded, depth = sizes[id(root)]
    return Materialised(distinct, expanded, depth)


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
    struct.error,  # the pure-Python unpickler unpacking a truncated length
)


def check_materialised(value: object) -> None:
    """Refuse a value whose shared references would materialise into far more than the file
    holds (see :data:`MAX_SHARED_ELEMENTS`), or that nests deeper than :data:`MAX_NESTING`
    (printing or converting it would exhaust the stack)."""
    distinct, expanded, depth = materialised_size(value)
    if depth > MAX_NESTING:
        raise PpgedgeError(
            f"refusing to unpickle containers nested {depth} deep (at most {MAX_NESTING}): "
            "not a plain data file"
        )
    limit = distinct + MAX_SHARED_ELEMENTS
    if expanded > limit:
        raise PpgedgeError(
            f"refusing to unpickle: its shared references would expand {distinct:,} elements to "
            f"more than {limit:,} (a list that repeats one array many times is a memory bomb, "
            "not a recording); use the original dataset file"
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
            value = SafeUnpickler(fh, encoding=encoding).load()
        check_materialised(value)
        return value
    except PpgedgeError as exc:
        raise PpgedgeError(f"{path}: {exc}") from None
    except OSError as exc:
        raise PpgedgeError(f"{path}: cannot read ({exc.strerror or exc}): check the file") from None
    except _CORRUPT as exc:
        raise PpgedgeError(
            f"{path}: not a readable pickle ({exc.__class__.__name__}: {str(exc)[:120]}): "
            "the file is corrupt or truncated; download it again"
        ) from None
