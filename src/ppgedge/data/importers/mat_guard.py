"""A structural check of MATLAB v5 ``.mat`` files before ``scipy.io.loadmat`` reads them.

scipy's v5 reader is not hardened against corrupt input (its docstring says so): the data type
code of an element is used to index a C table without a range check, so one flipped bit in a
downloaded file can crash the whole process with a segmentation fault instead of raising. This
module walks every element tag of the file in pure Python first (decompressing ``miCOMPRESSED``
variables with a size cap) and refuses

* a data type code outside the MAT v5 set, or an ``miMATRIX`` where numbers are expected,
* an array class scipy does not know (it fails with ``UnboundLocalError`` on one),
* an element or a compressed variable that claims more bytes than the file holds,
* dimensions that are negative or whose product could overflow,
* nesting deeper than :data:`MAX_DEPTH`, and compressed variables that together inflate past
  :func:`inflated_limit` (per file, not per variable: a 1 MB file can hold a thousand variables
  of 1 MB each, or one of 1 GB),

so whatever reaches scipy has well-formed tags. Version 4 and v7.3 (HDF5) files are left to
scipy (v4 is read with numpy, v7.3 is refused by the importers).
"""

from __future__ import annotations

import math
import struct
import zlib

HEADER_BYTES = 128
MAX_DEPTH = 32
# Bytes all compressed variables of one file may inflate to: 128 MiB, or 8 times the file's size
# for larger files (a recording expands a few times in memory while it is windowed).
MAX_INFLATED_BYTES = 128 << 20
MAX_INFLATE_RATIO = 8
MAX_ELEMENTS = 1 << 40
MAX_DIMS = 32  # scipy's own limit

MI_INT32, MI_UINT32, MI_MATRIX, MI_COMPRESSED = 5, 6, 14, 15
# miINT8..miSINGLE, miDOUBLE, miINT64, miUINT64, miUTF8..miUTF32 (8, 10, 11 are reserved)
NUMERIC_TYPES = frozenset({1, 2, 3, 4, 5, 6, 7, 9, 12, 13, 16, 17, 18})
ELEMENT_TYPES = NUMERIC_TYPES | {MI_MATRIX}
# mxCHAR, mxSPARSE and mxDOUBLE..mxUINT64 hold numbers after their flags, dims and name
NUMERIC_CLASSES = frozenset(range(4, 16))
OPAQUE_CLASS = 17


class MatStructureError(ValueError):
    """The file's element structure is corrupt; the message says where."""


def inflated_limit(file_bytes: int) -> int:
    """Decompressed bytes a file of ``file_bytes`` may hold in all its compressed variables."""
    return max(MAX_INFLATED_BYTES, MAX_INFLATE_RATIO * file_bytes)


def check_mat_structure(data: bytes) -> None:
    """Raise :class:`MatStructureError` unless every element tag of a v5 file is well formed.

    Sub-elements are walked through memoryviews, so nothing is copied but the inflated bytes of
    one compressed variable at a time.
    """
    if len(data) < 4 or 0 in data[:4]:
        return  # a v4 file (scipy reads those with numpy), or empty (scipy reports it)
    if len(data) < HEADER_BYTES:
        raise MatStructureError(f"{len(data)} bytes, shorter than the 128-byte MAT header")
    order = {b"IM": "<", b"MI": ">"}.get(data[126:128])
    if order is None:
        return  # not a v5 header: scipy says what it is
    major = data[125] if data[126:127] == b"I" else data[124]
    if major != 1:
        return  # 2 = v7.3 (HDF5), anything else scipy refuses itself
    pos = HEADER_BYTES
    view = memoryview(data)
    budget = inflated_limit(len(data))
    while pos < len(data):
        mdtype, nbytes = _tag(view, pos, order)
        if nbytes <= 0 or pos + 8 + nbytes > len(data):
            raise MatStructureError(
                f"variable at byte {pos} claims {nbytes} bytes, {len(data) - pos - 8} are left"
            )
        body = view[pos + 8 : pos + 8 + nbytes]
        if mdtype == MI_COMPRESSED:
            body = memoryview(_inflate(body, pos, budget, len(data)))
            budget -= len(body)
            inner, inner_bytes = _tag(body, 0, order)
            if inner != MI_MATRIX or inner_bytes > len(body) - 8:
                raise MatStructureError(f"compressed variable at byte {pos} is not a whole matrix")
            _matrix(body[8 : 8 + inner_bytes], order, 1)
        elif mdtype == MI_MATRIX:
            _matrix(body, order, 1)
        else:
            raise MatStructureError(f"element type {mdtype} at byte {pos} where a variable starts")
        pos += 8 + nbytes


def _tag(buf: memoryview, pos: int, order: str) -> tuple[int, int]:
    if pos + 8 > len(buf):
        raise MatStructureError(f"truncated element tag at byte {pos}")
    return struct.unpack_from(order + "II", buf, pos)


def _inflate(body: memoryview, pos: int, budget: int, file_bytes: int) -> bytes:
    """Inflate one variable, never past what is left of the file's budget."""
    z = zlib.decompressobj()
    try:
        out = z.decompress(body, max(budget, 0) + 1)
    except zlib.error as exc:
        raise MatStructureError(f"compressed variable at byte {pos} is corrupt ({exc})") from None
    if len(out) > budget:
        raise MatStructureError(
            f"compressed variables inflate past {inflated_limit(file_bytes) >> 20} MiB, the "
            f"limit for this file, at the variable at byte {pos}: a compression bomb"
        )
    return out


def _matrix(buf: memoryview, order: str, depth: int) -> None:
    """The sub-elements of one miMATRIX: 16 bytes of array flags, then tagged elements."""
    if depth > MAX_DEPTH:
        raise MatStructureError(f"matrices nested deeper than {MAX_DEPTH}")
    if not buf:
        return  # an empty matrix (allowed in cells and structs)
    if len(buf) < 16:
        raise MatStructureError("matrix shorter than its array flags")
    mclass = struct.unpack_from(order + "I", buf, 8)[0] & 0xFF
    if not 1 <= mclass <= OPAQUE_CLASS:
        raise MatStructureError(f"unknown array class {mclass}")
    p, index = 16, 0
    while p < len(buf):
        word = struct.unpack_from(order + "I", buf, p)[0] if p + 4 <= len(buf) else 0
        if word >> 16:  # small data element: type and byte count share the first word
            mdtype, nbytes, start, step = word & 0xFFFF, word >> 16, p + 4, 8
            if nbytes > 4 or p + 8 > len(buf):
                raise MatStructureError(f"small element of {nbytes} bytes at the end or over 4")
        else:
            mdtype, nbytes = _tag(buf, p, order)
            start, step = p + 8, 8 + nbytes + (-nbytes % 8)
            if start + nbytes > len(buf):
                raise MatStructureError(
                    f"element claims {nbytes} bytes, its matrix has {len(buf) - start} left"
                )
        if mdtype not in ELEMENT_TYPES:
            raise MatStructureError(f"unknown element type {mdtype}")
        content = buf[start : start + nbytes]
        is_dims = index == 0 and mclass != OPAQUE_CLASS
        if is_dims and mdtype in (MI_INT32, MI_UINT32):
            _check_dims(content, order, signed=mdtype == MI_INT32)
        elif mdtype == MI_MATRIX:
            if mclass in NUMERIC_CLASSES:
                raise MatStructureError(f"a matrix nested inside a numeric (class {mclass}) one")
            _matrix(content, order, depth + 1)
        p, index = p + step, index + 1


def _check_dims(content: memoryview, order: str, *, signed: bool) -> None:
    n = len(content) // 4
    if n > MAX_DIMS:
        raise MatStructureError(f"{n} dimensions (at most {MAX_DIMS})")
    dims = struct.unpack_from(f"{order}{n}{'i' if signed else 'I'}", content)
    if any(d < 0 or d >= 2**31 for d in dims):
        raise MatStructureError(f"dimensions {list(dims)} are out of range")
    if math.prod(dims) > MAX_ELEMENTS:
        raise MatStructureError(f"dimensions {list(dims)} claim more than 2**40 elements")
