"""Content hash of a dataset directory, so artifacts can record exactly what they saw."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ppgedge.data.format import ARRAYS

_CACHE: dict[tuple[str, float, int], str] = {}


def dataset_sha256(path: str | Path) -> str:
    """SHA-256 over meta.json and every array file, in a fixed order (cached per mtime)."""
    path = Path(path)
    files = [path / "meta.json", *(path / f"{a}.npy" for a in ARRAYS)]
    key = (
        str(path.resolve()),
        max(f.stat().st_mtime for f in files),
        sum(f.stat().st_size for f in files),
    )
    if key in _CACHE:
        return _CACHE[key]
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode())
        with open(f, "rb") as fh:
            while block := fh.read(1 << 22):
                digest.update(block)
    _CACHE[key] = digest.hexdigest()
    return _CACHE[key]
