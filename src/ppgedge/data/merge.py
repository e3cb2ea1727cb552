"""``ppgedge data merge``: datasets of the same format into one (BAMI-1 + BAMI-2, SPC train +
test, your recordings + a public set).

Windows are streamed in chunks (bounded memory whatever the sizes). Subjects stay subjects:
a name found in two datasets is refused unless ``prefix`` renames every subject to
``<dataset stem>_<name>``, because two people sharing an id would leak across a subject-wise
split. Recording names get their dataset's stem (``<stem>/<recording>``), so two recordings
are never joined by name. The merged dataset's provenance lists its parts and their
``meta.json`` hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ppgedge.data.format import Dataset, WindowedData
from ppgedge.data.stream_writer import stream_dataset
from ppgedge.errors import PpgedgeError

CHUNK_WINDOWS = 4096


def _renamed(ds: Dataset, prefix: bool) -> list[str]:
    stem = ds.path.name.removesuffix(".ppgds")
    return [f"{stem}_{s}" for s in ds.subjects] if prefix else list(ds.subjects)


def merge_datasets(paths: Sequence[str | Path], out: str | Path, *, prefix: bool = False) -> Path:
    """Write the windows of every dataset in ``paths`` to ``out`` (same format required)."""
    if len(paths) < 2:
        raise PpgedgeError("give two or more datasets to merge")
    datasets = [Dataset(p) for p in paths]
    fmt = datasets[0].fmt
    for ds in datasets[1:]:
        if ds.fmt != fmt:
            raise PpgedgeError(
                f"{ds.path}: format {ds.fmt} differs from {datasets[0].path}'s {fmt}: "
                "import both with the same --rate/--window/--hop/--channels"
            )
    seen: dict[str, Path] = {}
    for ds in datasets:
        for name in _renamed(ds, prefix):
            if name in seen:
                raise PpgedgeError(
                    f"subject '{name}' is in both {seen[name]} and {ds.path}: if they are "
                    "different people, merge with --prefix (names become <dataset>_<subject>)"
                )
            seen[name] = ds.path
    parts = [
        {
            "path": str(ds.path.resolve()),
            "source": ds.source,
            "windows": len(ds),
            "meta_sha256": hashlib.sha256((ds.path / "meta.json").read_bytes()).hexdigest(),
        }
        for ds in datasets
    ]
    provenance = {"merged": parts, "subject_prefix": prefix}
    with stream_dataset(out, fmt, source="merged", provenance=provenance) as writer:
        for ds in datasets:
            stem = ds.path.name.removesuffix(".ppgds")
            recordings = [f"{stem}/{r}"[:128] for r in ds.recordings]  # never merged by name
            for chunk in dataset_chunks(ds, subjects=_renamed(ds, prefix), recordings=recordings):
                writer.append(chunk)
    return Path(out)


def dataset_chunks(
    ds: Dataset,
    *,
    subjects: list[str] | None = None,
    recordings: list[str] | None = None,
) -> Iterator[WindowedData]:
    """``ds`` in chunks of :data:`CHUNK_WINDOWS` windows (never loaded whole), its subject and
    recording names optionally replaced (same order)."""
    for start in range(0, len(ds), CHUNK_WINDOWS):
        rows = slice(start, min(start + CHUNK_WINDOWS, len(ds)))
        yield WindowedData(
            x=np.asarray(ds.x[rows]),
            y=np.asarray(ds.y[rows]),
            subject=np.asarray(ds.subject[rows], np.int32),
            activity=np.asarray(ds.activity[rows], np.int16),
            recording=np.asarray(ds.recording[rows], np.int32),
            start_s=np.asarray(ds.start_s[rows]),
            subjects=list(ds.subjects if subjects is None else subjects),
            activities=list(ds.activities),
            recordings=list(ds.recordings if recordings is None else recordings),
            fmt=ds.fmt,
            source=str(ds.path),
        )
