"""One static memory plan: every intermediate tensor and scratch buffer at a fixed offset.

Lifetimes are TFLite Micro's (``AllocationInfoBuilder``: operator i at scope i + 1) and the
placement is its ``GreedyMemoryPlanner`` (``export.arena.greedy_offsets``), so the plan is the
one the interpreter would compute, minus what the AOT code does not need: a RESHAPE shares its
input's bytes and there is no persistent interpreter state. The model's input and output have
their slots in the arena as in TFLM (``NAME_AOT_INPUT_OFFSET``, ``..._OUTPUT_OFFSET``), so a
caller can preprocess straight into the arena; ``NAME_invoke`` takes their pointers either way.
Buffers are 16-byte aligned like TFLM's.
"""

from __future__ import annotations

from dataclasses import dataclass

from ppgedge.aot.graph import AotGraph
from ppgedge.aot.lower import Layer
from ppgedge.export.arena import align_up, greedy_offsets


@dataclass(frozen=True)
class Plan:
    arena_bytes: int
    offsets: dict[int, int]  # tensor index (alias roots only) -> offset
    scratch: dict[int, int]  # op index -> offset of its scratch buffer
    roots: dict[int, int]  # tensor index -> the tensor whose storage it uses
    copies: frozenset[int]  # ops (RESHAPE into the model output) that copy instead of alias

    def pointer(self, g: AotGraph, tensor: int) -> str:
        """The C expression of a tensor's data in ``NAME_invoke``."""
        root = self.roots.get(tensor, tensor)
        if root in g.inputs:
            return "input"
        if root in g.outputs:
            return "output"
        return f"(a + {self.offsets[root]})"


def plan(g: AotGraph, layers: list[Layer]) -> Plan:
    roots: dict[int, int] = {}
    copies = set()
    for layer in layers:
        if layer.alias is None:
            continue
        out, src = layer.alias
        if out in g.outputs:
            copies.add(layer.op.index)  # the caller's output buffer must receive the bytes
            continue
        roots[out] = roots.get(src, src)
    first: dict[int, int] = {}
    last: dict[int, int] = {}

    def touch(t: int, scope: int) -> None:
        r = roots.get(t, t)
        if g.tensors[r].data is not None:
            return
        first.setdefault(r, scope)
        last[r] = max(last.get(r, scope), scope)

    for t in g.inputs:
        touch(t, 0)
    for scope, op in enumerate(g.ops, start=1):
        for t in op.outputs:
            touch(t, scope)
        for t in op.inputs:
            if t >= 0:
                touch(t, scope)
    for t in g.outputs:
        touch(t, len(g.ops))
    ids = sorted(first)
    buffers = [(align_up(g.tensors[t].bytes), first[t], last[t]) for t in ids]
    scratch_ops = [layer for layer in layers if layer.scratch > 0]
    buffers += [(align_up(s.scratch), s.op.index + 1, s.op.index + 1) for s in scratch_ops]
    offsets = greedy_offsets(buffers)
    size = max((o + b[0] for o, b in zip(offsets, buffers, strict=True)), default=0)
    return Plan(
        arena_bytes=size,
        offsets={t: offsets[i] for i, t in enumerate(ids)},
        scratch={s.op.index: offsets[len(ids) + i] for i, s in enumerate(scratch_ops)},
        roots=roots,
        copies=frozenset(copies),
    )
