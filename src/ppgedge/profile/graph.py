"""The model as profiling sees it: tensors, operators in execution order, graph inputs/outputs.

Plain frozen dataclasses, independent of the flatbuffer library, so every later step (MACs,
memory plan, cycles) works on validated Python values and can be tested without a file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ppgedge.errors import PpgedgeError

# Bytes per element; INT4/UINT4/INT2 are packed several per byte (see Tensor.nbytes).
ITEMSIZE: dict[str, float] = {
    "FLOAT32": 4, "FLOAT16": 2, "INT32": 4, "UINT8": 1, "INT64": 8, "STRING": 1, "BOOL": 1,
    "INT16": 2, "COMPLEX64": 8, "INT8": 1, "FLOAT64": 8, "COMPLEX128": 16, "UINT64": 8,
    "RESOURCE": 4, "VARIANT": 4, "UINT32": 4, "UINT16": 2, "INT4": 0.5, "BFLOAT16": 2,
    "INT2": 0.25, "UINT4": 0.5,
}  # fmt: skip
FLOAT_TYPES = frozenset({"FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16"})
MAX_TENSOR_BYTES = 1 << 32


@dataclass(frozen=True)
class Tensor:
    """One tensor of subgraph 0. ``const_bytes`` > 0 means its data lives in the model file."""

    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    const_bytes: int = 0
    is_variable: bool = False
    n_scales: int = 0
    quant_dim: int = 0

    @property
    def elements(self) -> int:
        return math.prod(self.shape) if self.shape else 1

    @property
    def nbytes(self) -> int:
        """Bytes the tensor occupies (TfLiteEvalTensorByteLength); packed types round up."""
        return math.ceil(self.elements * ITEMSIZE.get(self.dtype, 1))

    @property
    def is_constant(self) -> bool:
        return self.const_bytes > 0

    @property
    def per_channel(self) -> bool:
        return self.n_scales > 1


@dataclass(frozen=True)
class Operator:
    """One operator; ``inputs`` may hold -1 for an omitted optional input (e.g. no bias)."""

    index: int
    opcode: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, int] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Graph:
    """Subgraph 0 of a .tflite model plus the file facts reports need."""

    name: str
    size_bytes: int
    sha256: str
    schema_version: int
    n_subgraphs: int
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    buffer_bytes: tuple[int, ...] = ()

    def tensor(self, index: int) -> Tensor:
        return self.tensors[index]

    def op_inputs(self, op: Operator) -> list[Tensor]:
        """The op's present inputs (omitted optional inputs dropped)."""
        return [self.tensors[i] for i in op.inputs if i >= 0]

    def op_outputs(self, op: Operator) -> list[Tensor]:
        return [self.tensors[i] for i in op.outputs]

    @property
    def constant_bytes(self) -> int:
        """Bytes of every constant tensor (weights, biases, shape constants)."""
        return sum(t.const_bytes for t in self.tensors if t.is_constant)


def validate(graph: Graph) -> None:
    """Structural sanity: indices in range, sane shapes and sizes, data as long as its shape.

    Anything failing here comes from a corrupt or hand-made file; the message says which.
    """
    name = graph.name
    if graph.schema_version != 3:
        raise PpgedgeError(
            f"{name}: TFLite schema version {graph.schema_version}; TFLite Micro reads version 3 "
            "(the file is corrupt or from an unsupported converter)"
        )
    if graph.n_subgraphs != 1:
        raise PpgedgeError(
            f"{name}: {graph.n_subgraphs} subgraphs (control flow); ppgedge profiles "
            "single-subgraph models"
        )
    n = len(graph.tensors)
    if not graph.operators:
        raise PpgedgeError(f"{name}: the model has no operators")
    if not graph.inputs or not graph.outputs:
        raise PpgedgeError(f"{name}: the model declares no inputs or no outputs")
    for t in graph.tensors:
        if t.dtype not in ITEMSIZE:
            raise PpgedgeError(f"{name}: tensor {t.index} has unknown type {t.dtype}")
        if any(d < 0 or d > MAX_TENSOR_BYTES for d in t.shape):
            raise PpgedgeError(
                f"{name}: tensor {t.index} ({t.name[:60]}) has shape {list(t.shape)}; TFLite "
                "Micro needs static, non-negative shapes"
            )
        if t.nbytes > MAX_TENSOR_BYTES:
            raise PpgedgeError(f"{name}: tensor {t.index} would need {t.nbytes} bytes")
        if t.is_constant and t.dtype != "STRING" and t.const_bytes < t.nbytes:
            raise PpgedgeError(
                f"{name}: corrupt .tflite (tensor {t.index} has {t.const_bytes} bytes of data "
                f"for shape {list(t.shape)} {t.dtype}, which needs {t.nbytes})"
            )
    for idx in (*graph.inputs, *graph.outputs):
        if not 0 <= idx < n:
            raise PpgedgeError(f"{name}: corrupt .tflite (graph tensor {idx} of {n})")
    for op in graph.operators:
        if not op.outputs:
            raise PpgedgeError(f"{name}: corrupt .tflite (op {op.index} has no outputs)")
        for idx in op.inputs:
            if not -1 <= idx < n:
                raise PpgedgeError(f"{name}: corrupt .tflite (op {op.index} input {idx} of {n})")
        for idx in op.outputs:
            if not 0 <= idx < n:
                raise PpgedgeError(f"{name}: corrupt .tflite (op {op.index} output {idx} of {n})")
