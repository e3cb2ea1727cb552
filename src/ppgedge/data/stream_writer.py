"""Write a dataset chunk by chunk, for data larger than memory.

:func:`~ppgedge.data.format.write_dataset` takes every window at once. :func:`stream_dataset`
yields a :class:`DatasetWriter` whose :meth:`~DatasetWriter.append` takes one
:class:`~ppgedge.data.format.WindowedData` at a time (a subject, a recording, a file) and
appends its windows to ``x.npy`` on disk: memory holds one chunk plus the per-window labels
(18 bytes a window), never the windows already written. The result is the same directory
:class:`~ppgedge.data.format.Dataset` reads (same arrays, same ``meta.json``), written into a
hidden temporary directory that is renamed into place only when every chunk is in, so an
interrupted import leaves nothing behind.

``x.npy`` is created with :func:`numpy.lib.format.open_memmap` (a valid, empty array file) and
grown by plain appends; its header is rewritten with the final window count at the end. numpy
pads ``.npy`` headers so the first axis can grow to 21 digits without moving the data, which
is what makes the in-place rewrite safe.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ppgedge.atomic import atomic_path
from ppgedge.data.format import SCHEMA, DataFormat, WindowedData, validate_windows
from ppgedge.errors import PpgedgeError
from ppgedge.ownership import DATASET


class DatasetWriter:
    """Appends windows to a dataset directory being written; see :func:`stream_dataset`."""

    def __init__(self, tmp: Path, fmt: DataFormat) -> None:
        self.dir = tmp
        self.fmt = fmt
        self.n = 0
        self.subjects: list[str] = []
        self.activities: list[str] = []
        self.recordings: list[str] = []
        self._labels: dict[str, list[np.ndarray]] = {
            "y": [],
            "subject": [],
            "activity": [],
            "recording": [],
            "start_s": [],
        }
        x_path = tmp / "x.npy"
        shape = (0, len(fmt.channels), fmt.window_samples)
        np.lib.format.open_memmap(x_path, mode="w+", dtype=np.float32, shape=shape).flush()
        self._header_bytes = x_path.stat().st_size
        self._x = open(x_path, "r+b")  # noqa: SIM115  closed in finish()/close()
        self._x.seek(self._header_bytes)

    def append(self, data: WindowedData) -> None:
        """Check ``data`` as :func:`write_dataset` would and append its windows."""
        if data.fmt != self.fmt:
            raise PpgedgeError(
                f"{data.source}: chunk format {data.fmt} differs from the dataset's {self.fmt}"
            )
        validate_windows(data)
        np.ascontiguousarray(data.x, dtype=np.float32).tofile(self._x)
        self._labels["y"].append(np.asarray(data.y, np.float32))
        self._labels["subject"].append(_remap(data.subject, data.subjects, self.subjects))
        self._labels["recording"].append(_remap(data.recording, data.recordings, self.recordings))
        self._labels["activity"].append(_remap(data.activity, data.activities, self.activities))
        self._labels["start_s"].append(np.asarray(data.start_s, np.float32))
        self.n += len(data)

    def finish(self, source: str, provenance: dict[str, Any]) -> None:
        """Final header, label arrays and ``meta.json``."""
        if self.n == 0:
            raise PpgedgeError(f"{source}: no windows were written")
        self._x.flush()
        os.fsync(self._x.fileno())
        self._x.seek(0)
        header = {
            "descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
            "fortran_order": False,
            "shape": (self.n, len(self.fmt.channels), self.fmt.window_samples),
        }
        np.lib.format.write_array_header_1_0(self._x, header)
        if self._x.tell() != self._header_bytes:
            raise RuntimeError("numpy changed the .npy header size: the data would move")
        self._x.close()
        dtypes = {"y": np.float32, "subject": np.int32, "activity": np.int16}
        dtypes |= {"recording": np.int32, "start_s": np.float32}
        for name, parts in self._labels.items():
            np.save(self.dir / f"{name}.npy", np.concatenate(parts).astype(dtypes[name]))
        meta = {
            "schema": SCHEMA,
            "source": source,
            "format": self.fmt.to_dict(),
            "n_windows": self.n,
            "subjects": self.subjects,
            "activities": self.activities,
            "recordings": self.recordings,
            "provenance": provenance,
        }
        (self.dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")

    def close(self) -> None:
        if not self._x.closed:
            self._x.close()


def _remap(codes: np.ndarray, local: list[str], names: list[str]) -> np.ndarray:
    """Indices into a chunk's own name list -> indices into the dataset's (new names appended);
    -1 (unknown activity) stays -1."""
    for name in local:
        if name not in names:
            names.append(name)
    table = np.asarray([names.index(name) for name in local] + [-1], np.int64)
    return table[np.asarray(codes, np.int64)]  # code -1 picks the trailing -1


@contextlib.contextmanager
def stream_dataset(
    path: str | Path,
    fmt: DataFormat,
    *,
    source: str,
    provenance: dict[str, Any] | None = None,
) -> Iterator[DatasetWriter]:
    """``with stream_dataset(path, fmt, source=...) as w: w.append(chunk) ...``: the dataset
    appears at ``path`` when the block ends without an exception, and not at all otherwise."""
    with atomic_path(path, directory=True, kind=DATASET) as tmp:
        writer = DatasetWriter(tmp, fmt)
        try:
            yield writer
            writer.finish(source, dict(provenance or {}))
        finally:
            writer.close()


def write_dataset_chunks(
    chunks: Iterable[WindowedData],
    path: str | Path,
    fmt: DataFormat,
    *,
    source: str,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """:func:`~ppgedge.data.format.write_dataset` for an iterable of chunks."""
    with stream_dataset(path, fmt, source=source, provenance=provenance) as writer:
        for chunk in chunks:
            writer.append(chunk)
    return Path(path)
