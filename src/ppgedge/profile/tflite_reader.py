"""Read any ``.tflite`` flatbuffer into a plain :class:`~ppgedge.profile.graph.Graph`.

The file is untrusted input: a truncated download, a bit flip or a file that is not a model at
all must end in one :class:`PpgedgeError`, never a traceback or a hang. The flatbuffers library
does no bounds checking of its own (a flipped length can point a vector anywhere), so this
reader

* checks the ``TFL3`` file identifier and the root offset before anything else,
* caps every vector by the bytes left in the file and the total number of vector elements it
  reads by the file size (a valid model never holds more elements than bytes), so a corrupt
  length cannot make it loop for long,
* reads only what profiling needs (shapes, types, buffer sizes, a few operator options) through
  the accessor API of the schema module that ships with tflite-micro, never unpacking the
  weights themselves, and
* turns any exception the flatbuffers code raises on garbage into a :class:`PpgedgeError`,
* bounds the counts that drive the work after it (subgraphs, operators and tensors over all
  subgraphs, buffers, operator codes, inputs and outputs per operator) before it iterates any of
  them: flatbuffers can list one operator table a million times at 4 bytes each, so "no more
  elements than bytes" alone still lets a 4 MB file take minutes, and
* checks every subgraph reference of a control-flow operator (``WHILE``, ``IF``, ``CALL_ONCE``,
  ``CALL`` and the StableHLO ones) against the subgraph count, and that no subgraph reaches
  itself (a ``WHILE`` whose body is its own subgraph never ends on a device), in one linear pass.

What is *semantically* wrong (an index out of range, a rank of 40) is checked by
:func:`ppgedge.profile.graph.validate`.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import Any

import numpy as np

from ppgedge.errors import PpgedgeError
from ppgedge.profile.graph import Graph, Operator, Tensor, validate

SCHEMA_MODULE = "tflite_micro.tensorflow.lite.micro.python.schema_py_generated"
IDENTIFIER = b"TFL3"
MAX_RANK = 8
# Limits for any file: a Cortex-M model has tens to a few hundred operators (the MLPerf Tiny
# models 10-70); these leave room for large ones while keeping reading, analysing and printing
# a model within seconds.
MAX_SUBGRAPHS = 256
MAX_OPERATORS = 1024  # over all subgraphs
MAX_TENSORS = 4096  # over all subgraphs
MAX_ACTIVATIONS = 1024  # tensors without constant data in subgraph 0: the arena planner is O(n^2)
MAX_BUFFERS = MAX_TENSORS + 1
MAX_OPCODES = 1024
MAX_OP_TENSORS = 256  # inputs, or outputs, of one operator or of a graph
MAX_TENSOR_REFS = 8192  # inputs and outputs of all operators of subgraph 0 (most have 1-3)

# Options tables whose fields name other subgraphs: table -> getters of one index or a vector.
_SUBGRAPH_REFS = {
    "WhileOptions": ("CondSubgraphIndex", "BodySubgraphIndex"),
    "IfOptions": ("ThenSubgraphIndex", "ElseSubgraphIndex"),
    "CallOnceOptions": ("InitSubgraphIndex",),
    "CallOptions": ("Subgraph",),
}
_SUBGRAPH_REFS_2 = {
    "StablehloWhileOptions": ("CondSubgraphIndex", "BodySubgraphIndex"),
    "StablehloReduceOptions": ("BodySubgraphIndex",),
    "StablehloReduceWindowOptions": ("BodySubgraphIndex",),
    "StablehloScatterOptions": ("UpdateComputationSubgraphIndex",),
    "StablehloSortOptions": ("ComparatorSubgraphIndex",),
    "StableHLOCompositeOptions": ("DecompositionSubgraphIndex",),
    "StablehloCaseOptions": ("BranchSubgraphIndices*",),
}

# Builtin options decoded for the analysis: the schema class, and its getters -> our keys.
_OPTIONS = {
    "Conv2DOptions": {
        "Padding": "padding", "StrideW": "stride_w", "StrideH": "stride_h",
        "DilationWFactor": "dilation_w", "DilationHFactor": "dilation_h",
        "FusedActivationFunction": "activation",
    },
    "DepthwiseConv2DOptions": {
        "Padding": "padding", "StrideW": "stride_w", "StrideH": "stride_h",
        "DilationWFactor": "dilation_w", "DilationHFactor": "dilation_h",
        "DepthMultiplier": "depth_multiplier", "FusedActivationFunction": "activation",
    },
    "TransposeConvOptions": {"Padding": "padding", "StrideW": "stride_w", "StrideH": "stride_h"},
    "Pool2DOptions": {
        "Padding": "padding", "StrideW": "stride_w", "StrideH": "stride_h",
        "FilterWidth": "filter_w", "FilterHeight": "filter_h",
    },
    "FullyConnectedOptions": {"KeepNumDims": "keep_num_dims", "WeightsFormat": "weights_format"},
}  # fmt: skip


def schema() -> Any:
    """The flatbuffer schema module shipped with tflite-micro (a pinned dependency)."""
    try:
        return importlib.import_module(SCHEMA_MODULE)
    except ImportError as exc:  # pragma: no cover - the package is a dependency
        raise PpgedgeError(
            f"reading .tflite needs the tflite-micro package ({exc}); reinstall ppgedge"
        ) from None


def _enum_names(cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


class _Budget:
    """Counts vector elements read; a corrupt length cannot make the reader run for long."""

    def __init__(self, data: bytes) -> None:
        self.size = len(data)
        self.left = len(data) + 4096

    def take(self, n: int, what: str, elem_bytes: int = 1, limit: int | None = None) -> int:
        n = int(n)
        if n < 0 or n * elem_bytes > self.size or n > self.left:
            raise _Corrupt(f"{what} claims {n} entries, more than the file can hold")
        if limit is not None and n > limit:
            raise _Refused(f"{n:,} {what}, more than the {limit:,} ppgedge reads")
        self.left -= n
        return n


class _Corrupt(Exception):
    """Raised inside the reader; reported as a one-line PpgedgeError."""


class _Refused(Exception):
    """A count over the reader's limits or a control-flow cycle; one line naming the file."""


def read_tflite(path: str | Path) -> Graph:
    """Parse ``path`` (any TFLite model) into a validated :class:`Graph` of subgraph 0."""
    path = Path(path)
    if not path.is_file():
        raise PpgedgeError(f"{path}: no such .tflite file")
    data = path.read_bytes()
    return parse_tflite(data, str(path))


def parse_tflite(data: bytes, name: str = "model") -> Graph:
    """:func:`read_tflite` on bytes already in memory."""
    graph = parse_unvalidated(data, name)
    validate(graph)
    return graph


def parse_unvalidated(data: bytes, name: str = "model") -> Graph:
    """The bounded structural read alone (limits, offsets, subgraph references), without the
    profiler's semantic checks: for readers that unpack the whole model afterwards."""
    if len(data) < 16 or data[4:8] != IDENTIFIER:
        raise PpgedgeError(
            f"{name}: not a TFLite model (no 'TFL3' flatbuffer identifier); "
            "give a .tflite file written by a TFLite converter"
        )
    root = int.from_bytes(data[0:4], "little")
    if root < 8 or root + 4 > len(data):
        raise PpgedgeError(f"{name}: corrupt .tflite (root table offset {root} outside the file)")
    try:
        graph = _parse(data, name)
    except PpgedgeError:
        raise
    except _Corrupt as exc:
        raise PpgedgeError(f"{name}: corrupt .tflite ({exc})") from None
    except _Refused as exc:
        raise PpgedgeError(f"{name}: {exc}") from None
    except Exception as exc:  # noqa: BLE001  flatbuffers raises anything on garbage offsets
        detail = f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
        raise PpgedgeError(
            f"{name}: corrupt or truncated .tflite (flatbuffer read failed: {detail})"
        ) from None
    return graph


def _parse(data: bytes, name: str) -> Graph:
    fb = schema()
    budget = _Budget(data)
    buf = bytearray(data)  # flatbuffers' numpy views want a writable-compatible buffer
    model = fb.Model.GetRootAs(buf, 0)
    version = int(model.Version())
    n_sub = budget.take(model.SubgraphsLength(), "subgraphs", 4, MAX_SUBGRAPHS)
    if n_sub < 1:
        raise _Corrupt("no subgraphs")
    n_codes = budget.take(model.OperatorCodesLength(), "operator codes", 4, MAX_OPCODES)
    n_buffers = budget.take(model.BuffersLength(), "buffers", 4, MAX_BUFFERS)
    subgraphs = _subgraphs(model, n_sub, budget)

    op_names = _enum_names(fb.BuiltinOperator)
    opcodes: list[str] = []
    for i in range(n_codes):
        code = model.OperatorCodes(i)
        if code is None:
            raise _Corrupt(f"operator code {i} missing")
        builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        op_name = op_names.get(builtin, f"BUILTIN_{builtin}")
        if op_name == "CUSTOM":
            custom = code.CustomCode()
            label = custom.decode("utf-8", "replace")[:64] if custom else "?"
            op_name = f"CUSTOM:{label}"
        opcodes.append(op_name)

    buffer_bytes: list[int] = []
    for i in range(n_buffers):
        b = model.Buffers(i)
        if b is None:
            buffer_bytes.append(0)
            continue
        n = budget.take(b.DataLength(), f"buffer {i}")
        if n:
            view = b.DataAsNumpy()  # a view, no copy; raises when the vector leaves the file
            if not isinstance(view, np.ndarray) or view.size != n:
                raise _Corrupt(f"buffer {i} data outside the file")
        else:
            offset, size = int(b.Offset()), int(b.Size())
            if offset > 1:  # models > 2 GB keep tensor data after the flatbuffer
                if offset + size > len(data):
                    raise _Corrupt(f"buffer {i} points past the end of the file")
                n = size
        buffer_bytes.append(n)

    _check_subgraph_references(fb, subgraphs)
    sub, n_tensors, n_ops = subgraphs[0]
    type_names = _enum_names(fb.TensorType)
    tensors = []
    for i in range(n_tensors):
        tensors.append(_tensor(fb, sub.Tensors(i), i, type_names, buffer_bytes, budget))
    n_activations = sum(1 for t in tensors if t.const_bytes == 0)
    if n_activations > MAX_ACTIVATIONS:
        raise _Refused(
            f"{n_activations:,} tensors without constant data, more than the "
            f"{MAX_ACTIVATIONS:,} ppgedge plans memory for"
        )

    option_types = _enum_names(fb.BuiltinOptions)
    operators = []
    refs = 0
    for i in range(n_ops):
        op = sub.Operators(i)
        if op is None:
            raise _Corrupt(f"operator {i} missing")
        idx = int(op.OpcodeIndex())
        if not 0 <= idx < len(opcodes):
            raise _Corrupt(f"operator {i} uses operator code {idx} of {len(opcodes)}")
        refs += max(int(op.InputsLength()), 0) + max(int(op.OutputsLength()), 0)
        if refs > MAX_TENSOR_REFS:
            raise _Refused(
                f"operators with more than {MAX_TENSOR_REFS:,} inputs and outputs in all, more "
                "than ppgedge reads (most operators have 1-3)"
            )
        inputs = _int_vector(op.InputsAsNumpy(), op.InputsLength(), budget, f"op {i} inputs")
        outputs = _int_vector(op.OutputsAsNumpy(), op.OutputsLength(), budget, f"op {i} outputs")
        options = _options(fb, op, option_types)
        operators.append(Operator(i, opcodes[idx], inputs, outputs, options))

    g_in = _int_vector(sub.InputsAsNumpy(), sub.InputsLength(), budget, "graph inputs")
    g_out = _int_vector(sub.OutputsAsNumpy(), sub.OutputsLength(), budget, "graph outputs")
    return Graph(
        name=name,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        schema_version=version,
        n_subgraphs=n_sub,
        tensors=tuple(tensors),
        operators=tuple(operators),
        inputs=g_in,
        outputs=g_out,
        buffer_bytes=tuple(buffer_bytes),
    )


def _subgraphs(model: Any, n_sub: int, budget: _Budget) -> list[tuple[Any, int, int]]:
    """(table, tensors, operators) of every subgraph, the totals checked before any is read."""
    out = []
    for s in range(n_sub):
        sub = model.Subgraphs(s)
        if sub is None:
            raise _Corrupt(f"subgraph {s} missing")
        n_tensors = budget.take(sub.TensorsLength(), f"subgraph {s} tensors", 4)
        n_ops = budget.take(sub.OperatorsLength(), f"subgraph {s} operators", 4)
        out.append((sub, n_tensors, n_ops))
    total_ops = sum(n for _, _, n in out)
    total_tensors = sum(n for _, n, _ in out)
    if total_ops > MAX_OPERATORS:
        raise _Refused(
            f"{total_ops:,} operators, more than the {MAX_OPERATORS:,} ppgedge reads (a "
            "microcontroller model has tens to hundreds)"
        )
    if total_tensors > MAX_TENSORS:
        raise _Refused(
            f"{total_tensors:,} tensors, more than the {MAX_TENSORS:,} ppgedge reads (a "
            "microcontroller model has tens to hundreds)"
        )
    return out


def _subgraph_refs(fb: Any, op: Any, names: dict[int, str], names2: dict[int, str]) -> list[int]:
    """The subgraph indices one operator's options name (empty for most operators)."""
    refs: list[int] = []
    for kind, table, getters in (
        (names.get(int(op.BuiltinOptionsType()), ""), op.BuiltinOptions, _SUBGRAPH_REFS),
        (names2.get(int(op.BuiltinOptions2Type()), ""), op.BuiltinOptions2, _SUBGRAPH_REFS_2),
    ):
        if kind not in getters:
            continue
        t = table()
        if t is None:
            continue
        opts = getattr(fb, kind)()
        opts.Init(t.Bytes, t.Pos)
        for getter in getters[kind]:
            if getter.endswith("*"):  # a vector of indices
                name = getter[:-1]
                n = int(getattr(opts, name + "Length")())
                if not 0 <= n <= MAX_SUBGRAPHS:
                    raise _Corrupt(f"{kind} names {n} subgraphs")
                refs.extend(int(getattr(opts, name)(j)) for j in range(n))
            else:
                refs.append(int(getattr(opts, getter)()))
    return refs


def _check_subgraph_references(fb: Any, subgraphs: list[tuple[Any, int, int]]) -> None:
    """Every subgraph index a control-flow operator names is in range, and no subgraph reaches
    itself: one pass over the (already bounded) operators, then a linear depth-first search."""
    names, names2 = _enum_names(fb.BuiltinOptions), _enum_names(fb.BuiltinOptions2)
    n_sub = len(subgraphs)
    edges: list[list[tuple[int, int]]] = [[] for _ in range(n_sub)]  # (callee, operator)
    for s, (sub, _, n_ops) in enumerate(subgraphs):
        for i in range(n_ops):
            op = sub.Operators(i)
            if op is None:
                raise _Corrupt(f"subgraph {s} operator {i} missing")
            for ref in _subgraph_refs(fb, op, names, names2):
                if not 0 <= ref < n_sub:
                    raise _Corrupt(
                        f"subgraph {s} operator {i} calls subgraph {ref}, the model has {n_sub}"
                    )
                edges[s].append((ref, i))
    state = [0] * n_sub  # 0 unseen, 1 on the current path, 2 done
    for start in range(n_sub):
        if state[start]:
            continue
        state[start] = 1
        stack = [(start, 0)]
        while stack:
            node, k = stack[-1]
            if k == len(edges[node]):
                state[node] = 2
                stack.pop()
                continue
            stack[-1] = (node, k + 1)
            callee, op_index = edges[node][k]
            if state[callee] == 1:
                raise _Refused(
                    f"subgraph {node} operator {op_index} calls subgraph {callee}, which is "
                    "already running (a control-flow cycle: the model would never finish)"
                )
            if state[callee] == 0:
                state[callee] = 1
                stack.append((callee, 0))


def _int_vector(arr: Any, length: int, budget: _Budget, what: str) -> tuple[int, ...]:
    n = budget.take(length, what, 4, MAX_OP_TENSORS)
    if n == 0:
        return ()
    if not isinstance(arr, np.ndarray) or arr.size != n:
        raise _Corrupt(f"{what} outside the file")
    return tuple(int(v) for v in arr)


def _tensor(
    fb: Any,
    t: Any,
    index: int,
    type_names: dict[int, str],
    buffer_bytes: list[int],
    budget: _Budget,
) -> Tensor:
    if t is None:
        raise _Corrupt(f"tensor {index} missing")
    rank = budget.take(t.ShapeLength(), f"tensor {index} shape", 4)
    if rank > MAX_RANK:
        raise _Corrupt(f"tensor {index} has rank {rank}")
    shape = _int_vector(t.ShapeAsNumpy(), rank, budget, f"tensor {index} shape") if rank else ()
    dtype = type_names.get(int(t.Type()), f"TYPE_{int(t.Type())}")
    buffer = int(t.Buffer())
    if not 0 <= buffer < max(len(buffer_bytes), 1):
        raise _Corrupt(f"tensor {index} uses buffer {buffer} of {len(buffer_bytes)}")
    const_bytes = buffer_bytes[buffer] if buffer < len(buffer_bytes) else 0
    raw_name = t.Name()
    name = raw_name.decode("utf-8", "replace")[:200] if raw_name else f"tensor_{index}"
    n_scales, quant_dim = 0, 0
    q = t.Quantization()
    if q is not None:
        n_scales = budget.take(q.ScaleLength(), f"tensor {index} scales", 4)
        quant_dim = int(q.QuantizedDimension())
    return Tensor(
        index=index,
        name=name,
        dtype=dtype,
        shape=shape,
        const_bytes=const_bytes,
        is_variable=bool(t.IsVariable()),
        n_scales=n_scales,
        quant_dim=quant_dim,
    )


def _options(fb: Any, op: Any, option_types: dict[int, str]) -> dict[str, int]:
    kind = option_types.get(int(op.BuiltinOptionsType()), "")
    wanted = _OPTIONS.get(kind)
    if not wanted:
        return {}
    table = op.BuiltinOptions()
    if table is None:
        return {}
    opts = getattr(fb, kind)()
    opts.Init(table.Bytes, table.Pos)
    return {key: int(getattr(opts, getter)()) for getter, key in wanted.items()}
