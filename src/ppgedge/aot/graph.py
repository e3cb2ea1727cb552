"""The int8 graph as the AOT backend needs it: every tensor's shape, quantisation and data.

``export.arena.read_graph`` gives the planner's view (shapes, constness); code generation also
needs the constant tensors' bytes and every scale and zero point, so this reads the model once
more through the same validated reader (``compress.tflite_file.read_model``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ppgedge.compress.tflite_file import enum_names, op_name, read_model
from ppgedge.errors import PpgedgeError

_NUMPY = {"INT8": np.int8, "INT32": np.int32, "INT16": np.int16, "INT64": np.int64,
          "FLOAT32": np.float32, "UINT8": np.uint8}  # fmt: skip


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    scale: tuple[float, ...]  # float32 values, as the flatbuffer holds them
    zero_point: tuple[int, ...]
    data: np.ndarray | None  # constant tensors only

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def bytes(self) -> int:
        return self.elements * np.dtype(_NUMPY.get(self.dtype, np.int32)).itemsize

    @property
    def zp(self) -> int:
        return int(self.zero_point[0]) if self.zero_point else 0

    @property
    def s(self) -> float:
        return float(self.scale[0]) if self.scale else 0.0


@dataclass(frozen=True)
class Op:
    index: int
    name: str
    inputs: tuple[int, ...]  # -1 for an omitted optional input
    outputs: tuple[int, ...]
    options: Any


@dataclass(frozen=True)
class AotGraph:
    path: Path
    tensors: tuple[Tensor, ...]
    ops: tuple[Op, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def layer(self, op: Op) -> str:
        """How refusals name a layer: index, operator and its first output tensor."""
        out = self.tensors[op.outputs[0]].name if op.outputs else "?"
        return f"layer {op.index} ({op.name} -> {out})"


def _data(model: Any, t: Any, dtype: str) -> np.ndarray | None:
    buf = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
    if buf is None or buf.data is None or len(buf.data) == 0:
        return None
    raw = np.asarray(buf.data, dtype=np.uint8).tobytes()
    shape = tuple(int(s) for s in (t.shape if t.shape is not None else []))
    return np.frombuffer(raw, dtype=np.dtype(_NUMPY[dtype]).newbyteorder("<")).reshape(shape)


def read(path: str | Path) -> AotGraph:
    """Read a single-subgraph .tflite; constant tensors carry their data."""
    path = Path(path)
    model = read_model(path)
    if len(model.subgraphs) != 1:
        raise PpgedgeError(f"{path}: {len(model.subgraphs)} subgraphs: the AOT backend compiles "
                           "single-subgraph models only")  # fmt: skip
    sub = model.subgraphs[0]
    types = enum_names("TensorType")
    tensors = []
    for i, t in enumerate(sub.tensors):
        dtype = types.get(t.type, str(t.type))
        q = t.quantization
        scale = tuple(float(s) for s in (q.scale if q is not None and q.scale is not None else []))
        zps = tuple(int(z) for z in (q.zeroPoint if q is not None and q.zeroPoint is not None
                                      else []))  # fmt: skip
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        shape = tuple(int(s) for s in (t.shape if t.shape is not None else []))
        data = _data(model, t, dtype) if dtype in _NUMPY else None
        tensors.append(Tensor(i, name, dtype, shape, scale, zps, data))
    ops = tuple(
        Op(
            i,
            op_name(model, op),
            tuple(int(x) for x in (op.inputs if op.inputs is not None else [])),
            tuple(int(x) for x in (op.outputs if op.outputs is not None else [])),
            op.builtinOptions,
        )
        for i, op in enumerate(sub.operators)
    )
    return AotGraph(path, tuple(tensors), ops, tuple(int(x) for x in sub.inputs),
                    tuple(int(x) for x in sub.outputs))  # fmt: skip
