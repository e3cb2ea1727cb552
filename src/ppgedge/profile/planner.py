"""The tensor arena as TFLite Micro plans it: lifetimes, then GreedyMemoryPlanner offsets.

A re-implementation (written from reading the algorithm, not a copy) of TFLite Micro's
``AllocationInfoBuilder::MarkAllocationLifetimes`` and ``GreedyMemoryPlanner`` (commit 90b983c):

Lifetimes, in allocation "scopes": the graph inputs are created and used at scope 0; operator
*i* runs at scope *i + 1*, where its outputs are created (unless already) and its inputs and
outputs are last used; scratch buffers an operator requests live only at its scope; the graph
outputs are last used at the final scope. Every tensor with no data in the file, not variable
and of non-zero size needs arena space (16-byte aligned sizes, ``MicroArenaBufferAlignment``).

Placement: buffers are ordered by size, largest first; TFLite Micro fills its sort array from
the end and sorts stably, so buffers of equal size come in *reverse* order of addition (tensors
by index, then scratch buffers by request); this tie order changes the arena of real models.
The first goes at offset 0. Each next one walks the placed buffers in offset order, looking
only at those whose lifetime overlaps its own, and takes the first gap between them (after the
running end of the buffers passed) that is large enough; otherwise it goes after the last one.
The arena head is the highest end offset. With the scratch buffers the host's reference kernels
request (only reduce ops here) it equals the host runtime's "Arena allocation head" (checked in
the tests).
"""

from __future__ import annotations

from dataclasses import dataclass

from ppgedge.profile.graph import Graph

ALIGNMENT = 16


def align_up(n: int, alignment: int = ALIGNMENT) -> int:
    return (n + alignment - 1) // alignment * alignment


@dataclass(frozen=True)
class Buffer:
    """One planned buffer: a tensor (``tensor`` >= 0) or an operator's scratch (``op`` >= 0)."""

    size: int
    first: int
    last: int
    tensor: int = -1
    op: int = -1
    raw_size: int = 0


@dataclass(frozen=True)
class Plan:
    """Offsets per buffer (same order as given) and the arena bytes they need."""

    buffers: tuple[Buffer, ...]
    offsets: tuple[int, ...]
    arena_bytes: int

    def live_peak(self) -> int:
        """The largest sum of raw buffer sizes alive at one scope: what any planner needs."""
        if not self.buffers:
            return 0
        scopes = {b.first for b in self.buffers} | {b.last for b in self.buffers}
        return max(sum(b.raw_size for b in self.buffers if b.first <= s <= b.last) for s in scopes)


def lifetimes(graph: Graph) -> dict[int, tuple[int, int]]:
    """(first, last) scope of every tensor index touched by the graph; untouched: (-1, -1)."""
    first = [-1] * len(graph.tensors)
    last = [-1] * len(graph.tensors)

    def created(idx: int, scope: int) -> None:
        if first[idx] == -1:
            first[idx] = scope

    scope = 0
    for idx in graph.inputs:
        created(idx, scope)
        last[idx] = scope
    for op in graph.operators:
        scope += 1
        for idx in op.outputs:
            created(idx, scope)
        for idx in op.inputs:
            if idx >= 0:
                last[idx] = scope
        for idx in op.outputs:
            last[idx] = scope
    for idx in graph.outputs:
        created(idx, scope)
        last[idx] = scope
    return {i: (first[i], last[i]) for i in range(len(graph.tensors))}


def tensor_buffers(graph: Graph) -> list[Buffer]:
    """Arena buffers for the tensors TFLite Micro allocates, in tensor-index order."""
    spans = lifetimes(graph)
    out = []
    for t in graph.tensors:
        if t.is_constant or t.is_variable or t.nbytes == 0:
            continue
        first, last = spans[t.index]
        out.append(Buffer(align_up(t.nbytes), first, last, tensor=t.index, raw_size=t.nbytes))
    return out


def scratch_buffer(op_index: int, nbytes: int) -> Buffer:
    """A scratch buffer requested by operator ``op_index`` (alive only while it runs)."""
    scope = op_index + 1
    return Buffer(align_up(nbytes), scope, scope, op=op_index, raw_size=nbytes)


def _overlaps(a: Buffer, first: int, last: int) -> bool:
    return not (a.first > last or first > a.last)


def plan(buffers: list[Buffer]) -> Plan:
    """GreedyMemoryPlanner placement (all buffers online-planned)."""
    if not buffers:
        return Plan((), (), 0)
    # Stable sort of the reversed addition order: ties come last-added first, as in TFLM.
    order = sorted(reversed(range(len(buffers))), key=lambda i: -buffers[i].size)
    offsets = [0] * len(buffers)
    placed: list[int] = []  # buffer ids sorted by offset (ties: insertion order)
    for i in order:
        want = buffers[i]
        candidate = 0
        for j in placed:
            other = buffers[j]
            if not _overlaps(other, want.first, want.last):
                continue
            if offsets[j] - candidate >= want.size:
                break
            candidate = max(candidate, offsets[j] + other.size)
        offsets[i] = candidate
        pos = len(placed)
        for k, j in enumerate(placed):
            if offsets[j] > candidate:
                pos = k
                break
        placed.insert(pos, i)
    arena = max(offsets[i] + buffers[i].size for i in range(len(buffers)))
    return Plan(tuple(buffers), tuple(offsets), arena)
