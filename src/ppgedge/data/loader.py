"""Batches from a dataset: shuffled by a seeded generator, streamed from the memory map.

Small datasets are copied to RAM once (fast epochs); above ``in_memory_limit_bytes`` each batch
reads only its own rows from the memory-mapped file, so a dataset larger than RAM still trains.
Pages a streamed epoch has touched stay mapped (and counted in the process's RSS, which batch
schedulers limit) until released: every ``RELEASE_BYTES`` read, the mapping is told they are not
needed (``MADV_DONTNEED``; the file is read-only, so nothing is lost).
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from ppgedge.data.format import Dataset
from ppgedge.data.preprocess import check_known, zscore_numpy

DEFAULT_IN_MEMORY_LIMIT = 1 << 30
RELEASE_BYTES = 256 << 20


class WindowSource:
    """The windows of ``indices`` with the chosen channels, preprocessed per batch."""

    def __init__(
        self,
        dataset: Dataset,
        indices: np.ndarray,
        channels: Sequence[str],
        *,
        preprocessing: str = "zscore_per_window",
        in_memory_limit_bytes: int = DEFAULT_IN_MEMORY_LIMIT,
    ) -> None:
        check_known(preprocessing)
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.channel_idx = dataset.channel_index(channels)
        self.y = np.asarray(dataset.y[self.indices], dtype=np.float32)
        row_bytes = int(np.prod(dataset.x.shape[1:])) * 4
        self._ram: np.ndarray | None = None
        self._row_bytes = row_bytes
        self._streamed = 0
        if row_bytes * len(self.indices) <= in_memory_limit_bytes:
            self._ram = np.asarray(dataset.x[np.sort(self.indices)])[:, self.channel_idx]
            self._ram_pos = np.argsort(np.argsort(self.indices))

    def __len__(self) -> int:
        return len(self.indices)

    def windows(self, positions: np.ndarray) -> np.ndarray:
        """Preprocessed windows at ``positions`` (into ``indices``), float32 (B, C, T)."""
        if self._ram is not None:
            raw = self._ram[self._ram_pos[positions]]
        else:
            rows = self.indices[positions]
            order = np.argsort(rows)  # sorted reads are sequential on disk
            raw = np.empty((len(rows), len(self.channel_idx), self.dataset.x.shape[2]), np.float32)
            raw[order] = np.asarray(self.dataset.x[rows[order]])[:, self.channel_idx]
            self._streamed += len(rows) * self._row_bytes
            if self._streamed >= RELEASE_BYTES:
                self._release()
        return zscore_numpy(raw)

    def _release(self) -> None:
        """Drop the mapped pages read so far from this process's resident set."""
        self._streamed = 0
        mapping = getattr(self.dataset.x, "_mmap", None)
        if isinstance(mapping, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
            mapping.madvise(mmap.MADV_DONTNEED)

    def batches(
        self, batch_size: int, rng: np.random.Generator | None = None
    ) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
        """Yield (positions, x, y); shuffled when ``rng`` is given, in order otherwise."""
        order = rng.permutation(len(self)) if rng is not None else np.arange(len(self))
        for start in range(0, len(order), batch_size):
            pos = order[start : start + batch_size]
            yield pos, torch.from_numpy(self.windows(pos)), torch.from_numpy(self.y[pos])
