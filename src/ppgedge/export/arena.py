"""How large the TensorFlow Lite Micro tensor arena must be on a Cortex-M, from a ``.tflite``.

Built from parts we can check, never from a guess:

1. **The TFLite Micro host runtime** (:func:`host_arena`). ``print_allocations()`` writes
   ``Arena allocation total/head/tail N bytes`` to C-level stderr (fd 2); we capture it.
   ``head`` is the non-persistent section (the memory plan: activations and scratch buffers,
   overlapped by lifetime), ``tail`` the persistent one (tensor structs, node/registration
   arrays, kernel ``OpData``, per-channel multipliers). That total is what is allocated *after*
   ``AllocateTensors()``; it is not always the smallest arena that works, because kernels'
   ``Prepare`` and the memory planner need temporary memory on the way (temporary
   ``TfLiteTensor`` copies with per-channel quantisation arrays, ``AllocationInfo`` records,
   the planner's working arrays). So we also find the smallest ``arena_size=`` the runtime
   accepts by bisection (:func:`host_minimum_arena`, each try in a child process: a too-small
   arena can crash it). ``host_measured`` is the larger of the two. Seen: an MLP whose printed
   total is 4272 B needs 4888 B (a 180-channel FULLY_CONNECTED's Prepare).
2. **CMSIS-NN scratch buffers** (:func:`cmsis_scratch`), which the host build lacks because it
   runs the reference kernels. Their sizes are re-implemented from CMSIS-NN's documented
   ``arm_*_get_buffer_size`` functions, following the **Cortex-M with DSP extension** branch
   (``ARM_MATH_DSP`` defined, ``ARM_MATH_MVEI`` not: Cortex-M4, M7, M33), and from TFLite
   Micro's ``kernels/cmsis_nn/*.cc`` for which function each op calls with which dimensions.
3. **32-bit versus 64-bit**: the host is a 64-bit build, so pointers in ``TfLiteTensor``,
   ``TfLiteEvalTensor``, ``NodeAndRegistration``, ``AllocationInfo`` and kernel ``OpData`` take
   8 bytes there and 4 on a Cortex-M; integer arrays are the same size. Every phase the host
   measured is therefore an upper bound for the same structures on the device, and we take no
   credit for the difference. What a CMSIS-NN build adds on top is counted per phase:

   - after ``AllocateTensors()``: the scratch buffers in the plan (see below), a larger
     ``OpData`` for some CMSIS-NN kernels (:data:`CMSIS_OPDATA_ALLOWANCE` per op) and one
     ``ScratchBufferHandle`` per scratch request;
   - while ``Prepare`` runs: a ``ScratchBufferRequest`` record per request;
   - while the planner runs: an ``AllocationInfo`` record and the greedy planner's working
     entry per extra buffer (:data:`PLANNING_BYTES_PER_BUFFER`).

   The device needs at most the host's worst phase plus the largest of these per-phase
   additions, which is what :func:`arena_estimate` adds.

Why the *largest* per-op scratch bounds the plan's growth: TFLite Micro's planner
(``MicroAllocator::CommitStaticMemoryPlan`` with ``GreedyMemoryPlanner``) plans each scratch
buffer like a tensor that lives only during its own operator (``first_created == last_used ==
node``). Scratch buffers of different ops are therefore never live at once, and placing every
scratch buffer just above the host plan is a valid plan of size ``host + max(per-op scratch)``.
The greedy planner need not find that plan (first-fit by decreasing size can move smaller
buffers), so we also re-run its algorithm (:func:`greedy_plan_size`, checked against the
host's measured ``head``) with and without the CMSIS-NN buffers and take whichever increase is
larger.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ppgedge.atomic import file_sha256
from ppgedge.compress.tflite_file import enum_names, op_name, read_model
from ppgedge.errors import PpgedgeError

ALIGN = 16  # MicroArenaBufferAlignment(): every planned and persistent buffer is 16-aligned
MARGIN_BYTES = 64
"""Fixed margin: up to 15 bytes lost when the arena array itself is not 16-byte aligned (TFLite
Micro aligns its start up), the rest an allowance for struct changes between TFLM versions."""
CMSIS_OPDATA_ALLOWANCE = 16
"""Per op run by a CMSIS-NN kernel: its ``OpData`` wraps the reference one and adds buffer
indices (fully connected: two indices, a kernel-sum pointer and three int32 sizes, 24 bytes on a
32-bit core), which after 16-byte alignment is one alignment unit more than the 64-bit host
measured for fully connected and pooling; conv and depthwise conv shrink instead (no credit)."""
SCRATCH_HANDLE_BYTES = 4  # ScratchBufferHandle { uint8_t* data; } on a 32-bit core
SCRATCH_REQUEST_BYTES = 12  # ScratchBufferRequest { size_t bytes; int node_idx, subgraph_idx; }
PLANNING_BYTES_PER_BUFFER = 24 + 40
"""While planning, per buffer: an ``AllocationInfo`` (24 bytes on a 32-bit core) and the
greedy planner's ``per_buffer_size()`` (40 bytes: requirements, two sort arrays, list entry,
offset)."""
CMSIS_BRANCH = "ARM_MATH_DSP (Cortex-M4/M7/M33, no MVE)"

# Ops that TFLite Micro replaces by a CMSIS-NN kernel when built with OPTIMIZED_KERNEL_DIR=cmsis_nn
# (tensorflow/lite/micro/kernels/cmsis_nn/*.cc).
CMSIS_NN_OPS = frozenset(
    {
        "ADD",
        "AVERAGE_POOL_2D",
        "BATCH_MATMUL",
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "FULLY_CONNECTED",
        "MAXIMUM",
        "MAX_POOL_2D",
        "MINIMUM",
        "MUL",
        "PAD",
        "SOFTMAX",
        "SVDF",
        "TRANSPOSE",
        "TRANSPOSE_CONV",
        "UNIDIRECTIONAL_SEQUENCE_LSTM",
    }
)
_TYPE_BYTES = {
    "FLOAT32": 4,
    "FLOAT16": 2,
    "FLOAT64": 8,
    "INT32": 4,
    "UINT32": 4,
    "INT16": 2,
    "UINT16": 2,
    "INT8": 1,
    "UINT8": 1,
    "BOOL": 1,
    "INT64": 8,
    "UINT64": 8,
}
_LINE = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")


def align_up(n: int, alignment: int = ALIGN) -> int:
    return (int(n) + alignment - 1) // alignment * alignment


# ---------------------------------------------------------------------------------------------
# 1. The host runtime's measurement
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostArena:
    """What TFLite Micro's RecordingMicroAllocator reports on this (64-bit) host."""

    total: int
    planned: int  # "head": the non-persistent memory plan
    persistent: int  # "tail"
    report: str


@contextlib.contextmanager
def _capture_fd2() -> Iterator[Path]:
    """Redirect C-level stderr (fd 2) into a temporary file: the runtime prints with fprintf,
    which Python's ``sys.stderr`` never sees. Process-wide while active."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    fd, name = tempfile.mkstemp(prefix="ppgedge-tflm-", suffix=".log")
    saved = os.dup(2)
    try:
        os.dup2(fd, 2)
        yield Path(name)
    finally:
        with contextlib.suppress(Exception):
            ctypes.CDLL(None).fflush(None)  # flush C stdio buffers into the file
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)


def host_arena(tflite_path: str | Path) -> HostArena:
    """Arena the TFLite Micro host runtime allocates for this model, split planned/persistent."""
    path = Path(tflite_path)
    if not path.is_file():
        raise PpgedgeError(f"{path}: no such .tflite file")
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as exc:  # pragma: no cover - pinned dependency
        raise PpgedgeError(f"measuring the arena needs tflite-micro ({exc})") from None
    log = None
    try:
        with _capture_fd2() as log:
            try:
                interp = runtime.Interpreter.from_file(str(path))
                interp.print_allocations()
            except Exception as exc:  # noqa: BLE001  the runtime raises plain RuntimeError
                raise PpgedgeError(f"{path}: TFLite Micro cannot load it ({exc})") from None
        text = log.read_text(errors="replace")
    finally:
        if log is not None:
            log.unlink(missing_ok=True)
    found = {k: int(v) for k, v in _LINE.findall(text)}
    if "total" not in found:
        raise PpgedgeError(
            f"{path}: the TFLite Micro runtime printed no 'Arena allocation total' line "
            "(a tflite-micro version whose print_allocations() output differs?)"
        )
    total = found["total"]
    planned = found.get("head", total - found.get("tail", 0))
    persistent = found.get("tail", total - planned)
    return HostArena(total=total, planned=planned, persistent=persistent, report=text.strip())


def host_arena_bytes(tflite_path: str | Path) -> int:
    """Total arena bytes the TFLite Micro host runtime measured (64-bit build, reference
    kernels): ``print_allocations()``'s ``Arena allocation total``."""
    return host_arena(tflite_path).total


_PROBE = (
    "import sys\n"
    "from tflite_micro.python.tflite_micro import runtime\n"
    "runtime.Interpreter.from_file(sys.argv[1], arena_size=int(sys.argv[2]))\n"
)


def host_arena_fits(tflite_path: str | Path, arena_size: int) -> bool:
    """Whether the TFLite Micro host runtime allocates the model in ``arena_size`` bytes. Runs
    in a child process: with a too-small arena the runtime can crash instead of failing."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tflite_path), str(int(arena_size))],
        capture_output=True,
        timeout=300,
    )
    return done.returncode == 0


def host_minimum_arena(tflite_path: str | Path, start: int | None = None) -> int:
    """The smallest ``arena_size`` (to the byte) with which the TFLite Micro host runtime
    allocates the model, found by bracketing around ``start`` (default: the printed total) and
    bisecting; about 6 to 12 runs of a fraction of a second."""
    path = Path(tflite_path)
    return _host_minimum(str(path.resolve()), file_sha256(path), start)


@functools.lru_cache(maxsize=64)
def _host_minimum(path: str, sha256: str, start: int | None) -> int:
    del sha256  # part of the cache key: the same file content gives the same answer
    start = host_arena_bytes(path) if start is None else int(start)
    if host_arena_fits(path, start):
        hi, step, lo = start, ALIGN, start - ALIGN
        while lo > 0 and host_arena_fits(path, lo):
            hi, step = lo, step * 4
            lo = max(start - step, 0)
    else:
        lo, step = start, 256
        hi = start + step
        while not host_arena_fits(path, hi):
            lo, step = hi, step * 2
            if step > 64 * max(start, 1024):
                raise PpgedgeError(f"{path}: TFLite Micro cannot allocate it in {hi} bytes either")
            hi = start + step
    while hi - lo > 1:  # lo fails, hi fits
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if host_arena_fits(path, mid) else (mid, hi)
    return hi


# ---------------------------------------------------------------------------------------------
# The graph, as the planner sees it
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    constant: bool
    variable: bool
    n_scales: int = 0

    @property
    def bytes(self) -> int:
        n = int(np.prod(self.shape)) if self.shape else 1
        return n * _TYPE_BYTES.get(self.dtype, 4)


@dataclass(frozen=True)
class _Op:
    index: int
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: Any


@dataclass(frozen=True)
class Graph:
    """The main subgraph: tensors (shape, type, constant or not) and operators in order."""

    tensors: tuple[_Tensor, ...]
    ops: tuple[_Op, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def layer(self, op: _Op) -> str:
        """The name of an op's first output tensor: the layer that produced it."""
        return self.tensors[op.outputs[0]].name if op.outputs else f"op {op.index}"


def read_graph(tflite_path: str | Path) -> Graph:
    model = read_model(tflite_path)
    if len(model.subgraphs) != 1:
        raise PpgedgeError(
            f"{tflite_path}: {len(model.subgraphs)} subgraphs: a single-subgraph model is expected"
        )
    sub = model.subgraphs[0]
    types = enum_names("TensorType")
    tensors = []
    for t in sub.tensors:
        buf = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
        has_data = buf is not None and (
            (buf.data is not None and len(buf.data) > 0) or int(getattr(buf, "offset", 0) or 0) > 1
        )
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        shape = tuple(int(s) for s in (t.shape if t.shape is not None else []))
        q = t.quantization
        n_scales = len(q.scale) if q is not None and q.scale is not None else 0
        dtype = types.get(t.type, str(t.type))
        tensors.append(_Tensor(name, dtype, shape, has_data, bool(t.isVariable), n_scales))
    ops = tuple(
        _Op(
            i,
            op_name(model, op),
            tuple(int(x) for x in (op.inputs if op.inputs is not None else [])),
            tuple(int(x) for x in (op.outputs if op.outputs is not None else [])),
            op.builtinOptions,
        )
        for i, op in enumerate(sub.operators)
    )
    return Graph(
        tuple(tensors),
        ops,
        tuple(int(x) for x in sub.inputs),
        tuple(int(x) for x in sub.outputs),
    )


# ---------------------------------------------------------------------------------------------
# 2. CMSIS-NN scratch buffers (Cortex-M with DSP extension)
# ---------------------------------------------------------------------------------------------


def convolve_s8_buffer_size(input_c: int, filter_w: int, filter_h: int) -> int:
    """``arm_convolve_s8_get_buffer_size`` (non-MVE branch): an im2col buffer of two columns
    of int16, each ``rhs_cols = filter_w * filter_h * input_c`` rounded up to a multiple of 4."""
    rhs_cols = filter_w * filter_h * input_c
    aligned = rhs_cols + (4 - rhs_cols % 4) % 4
    return 2 * aligned * 2


def convolve_1x1_s8_fast_buffer_size(input_c: int) -> int:
    """``arm_convolve_1x1_s8_fast_get_buffer_size`` (``_dsp``): ``2 * input_c`` int16 when
    compiled with Arm Compiler 6, 0 with GCC. We take the Arm Compiler value, an upper bound for
    both toolchains."""
    return 2 * input_c * 2


def conv_padding(
    padding: int, stride: int, dilation: int, in_size: int, filter_size: int
) -> tuple[int, int]:
    """(pad, out_size) as TFLite Micro computes them (``ComputePaddingHeightWidth``):
    padding 0 = SAME, 1 = VALID in the schema's ``Padding`` enum."""
    eff = (filter_size - 1) * dilation + 1
    out = (in_size + stride - 1) // stride if padding == 0 else (in_size + stride - eff) // stride
    total = max((out - 1) * stride + eff - in_size, 0)
    return total // 2, out


def convolve_wrapper_s8_buffer_size(
    input_dims: tuple[int, int, int, int],
    filter_hw: tuple[int, int],
    filter_c: int,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    pad: tuple[int, int],
) -> tuple[int, str]:
    """``arm_convolve_wrapper_s8_get_buffer_size`` -> ``..._dsp``: which kernel the wrapper
    picks (``arm_nn_is_convolve_1x1``, ``arm_nn_is_convolve_1x1_fast``,
    ``arm_nn_is_convolve_1_x_n``) and its buffer. Dims are NHWC, pairs are (h, w)."""
    _, in_h, _, in_c = input_dims
    f_h, f_w = filter_hw
    s_h, s_w = stride
    d_h, d_w = dilation
    p_h, p_w = pad
    is_1x1 = p_w == 0 and p_h == 0 and f_w == 1 and f_h == 1 and d_w == 1 and d_h == 1
    if is_1x1 and in_c == filter_c:
        if s_w == 1 and s_h == 1:
            return convolve_1x1_s8_fast_buffer_size(in_c), "arm_convolve_1x1_s8_fast"
        return 0, "arm_convolve_1x1_s8"
    if in_h == 1 and d_w == 1 and f_h == 1 and (s_w * in_c) % 4 == 0 and in_c == filter_c:
        # arm_convolve_1_x_n_s8_get_buffer_size: without MVE it is arm_convolve_s8's size
        return convolve_s8_buffer_size(in_c, f_w, f_h), "arm_convolve_1_x_n_s8"
    return convolve_s8_buffer_size(in_c, f_w, f_h), "arm_convolve_s8"


def depthwise_conv_wrapper_s8_buffer_size(
    input_dims: tuple[int, int, int, int],
    filter_hw: tuple[int, int],
    output_c: int,
    dilation: tuple[int, int],
    pad: tuple[int, int],
) -> tuple[int, str]:
    """``arm_depthwise_conv_wrapper_s8_get_buffer_size`` (``_dsp``): the 3x3 kernel
    (``arm_depthwise_conv_3x3_s8``, padding <= 1) needs none; the optimised kernel
    (``arm_depthwise_conv_s8_opt``, ``..._opt_get_buffer_size_dsp``) needs
    ``input_c * filter_w * filter_h`` int16; the generic one (channel multiplier > 1, batch > 1
    or dilation) needs none."""
    n, _, _, in_c = input_dims
    f_h, f_w = filter_hw
    d_h, d_w = dilation
    p_h, p_w = pad
    if in_c == output_c and n == 1 and d_w == 1 and d_h == 1:
        if f_w == 3 and f_h == 3 and p_h <= 1 and p_w <= 1:
            return 0, "arm_depthwise_conv_3x3_s8"
        return in_c * f_w * f_h * 2, "arm_depthwise_conv_s8_opt"
    return 0, "arm_depthwise_conv_s8"


def fully_connected_s8_buffer_size(output_c: int) -> int:
    """``arm_fully_connected_s8_get_buffer_size`` (``_dsp``): 0. (With MVE it is
    ``output_c * 4`` for kernel sums, which TFLite Micro keeps in a persistent buffer when
    optimised for speed.)"""
    del output_c
    return 0


def avgpool_s8_buffer_size(output_w: int, channels: int) -> int:
    """``arm_avgpool_s8_get_buffer_size`` (``_dsp``): one int32 accumulator per channel."""
    del output_w
    return channels * 4


@dataclass(frozen=True)
class OpScratch:
    """Scratch buffers one operator requests from the arena under CMSIS-NN."""

    index: int
    op: str
    layer: str
    kernel: str
    requests: tuple[int, ...]  # bytes as requested (RequestScratchBufferInArena)

    @property
    def bytes(self) -> int:
        """What the planner reserves for this op: each request rounded up to 16 bytes."""
        return sum(align_up(r) for r in self.requests)


def _dims4(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    s = (1,) * (4 - len(shape)) + tuple(shape)
    return s[0], s[1], s[2], s[3]


def _int8(graph: Graph, op: _Op) -> bool:
    return bool(op.inputs) and graph.tensors[op.inputs[0]].dtype == "INT8"


def _op_scratch(graph: Graph, op: _Op) -> OpScratch | None:
    """The CMSIS-NN scratch requests of one op, as ``kernels/cmsis_nn/<op>.cc``'s Prepare makes
    them; None for ops that keep the reference kernel (their scratch is in the host number)."""
    t = graph.tensors
    o = op.options

    def make(kernel: str, *requests: int) -> OpScratch:
        reqs = tuple(int(r) for r in requests if r > 0)
        return OpScratch(op.index, op.name, graph.layer(op), kernel, reqs)

    if op.name not in CMSIS_NN_OPS or not _int8(graph, op):
        return None
    if op.name == "CONV_2D":
        inp, flt = _dims4(t[op.inputs[0]].shape), t[op.inputs[1]].shape
        f_h, f_w, f_c = int(flt[1]), int(flt[2]), int(flt[3])
        d_h, d_w = int(o.dilationHFactor), int(o.dilationWFactor)
        p_h, _ = conv_padding(o.padding, o.strideH, d_h, inp[1], f_h)
        p_w, _ = conv_padding(o.padding, o.strideW, d_w, inp[2], f_w)
        size, kernel = convolve_wrapper_s8_buffer_size(
            inp, (f_h, f_w), f_c, (o.strideH, o.strideW), (d_h, d_w), (p_h, p_w)
        )
        return make(kernel, size)
    if op.name == "DEPTHWISE_CONV_2D":
        inp, flt = _dims4(t[op.inputs[0]].shape), t[op.inputs[1]].shape
        out_c = _dims4(t[op.outputs[0]].shape)[3]
        f_h, f_w = int(flt[1]), int(flt[2])
        d_h, d_w = int(o.dilationHFactor), int(o.dilationWFactor)
        p_h, _ = conv_padding(o.padding, o.strideH, d_h, inp[1], f_h)
        p_w, _ = conv_padding(o.padding, o.strideW, d_w, inp[2], f_w)
        size, kernel = depthwise_conv_wrapper_s8_buffer_size(
            inp, (f_h, f_w), out_c, (d_h, d_w), (p_h, p_w)
        )
        return make(kernel, size)
    if op.name == "FULLY_CONNECTED":
        flt, out = t[op.inputs[1]].shape, t[op.outputs[0]].shape
        accum_depth = int(flt[-1])
        output_depth = int(out[-1])
        if len(out) > 2 and accum_depth % 4 == 0:
            # TFLM routes it to arm_convolve_1x1_s8_fast; per-tensor weights also need a
            # buffer of per-channel multipliers and shifts (output_depth * 2 int32).
            per_tensor = t[op.inputs[1]].n_scales <= 1
            return make(
                "arm_convolve_1x1_s8_fast (fully connected as 1x1 conv)",
                output_depth * 8 if per_tensor else 0,
                convolve_1x1_s8_fast_buffer_size(accum_depth),
            )
        return make("arm_fully_connected_s8", fully_connected_s8_buffer_size(output_depth))
    if op.name == "AVERAGE_POOL_2D":
        out = _dims4(t[op.outputs[0]].shape)
        return make("arm_avgpool_s8", avgpool_s8_buffer_size(out[2], out[3]))
    return make(f"CMSIS-NN {op.name.lower()} (no scratch)")


def cmsis_scratch(graph: Graph) -> list[OpScratch]:
    """Per-op CMSIS-NN scratch requests, for every op that runs a CMSIS-NN kernel."""
    return [s for op in graph.ops if (s := _op_scratch(graph, op)) is not None]


# ---------------------------------------------------------------------------------------------
# TFLite Micro's greedy memory planner, re-run to check the bound
# ---------------------------------------------------------------------------------------------


def _reference_scratch(graph: Graph, op: _Op) -> tuple[int, ...]:
    """Scratch that reference kernels request (the host has them; so does the device for ops
    without a CMSIS-NN kernel): ``reduce_common.cc``'s Prepare for MEAN and SUM on int8/int16
    asks for an int32 accumulator per output element, then input-rank and axis-count ints;
    REDUCE_MAX/MIN for the last two."""
    if op.name not in {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"}:
        return ()
    t = graph.tensors
    rank = len(t[op.inputs[0]].shape)
    axis = t[op.inputs[1]]
    n_axis = int(np.prod(axis.shape)) if axis.shape else 1
    reqs = []
    if op.name in {"MEAN", "SUM"} and t[op.inputs[0]].dtype in {"INT8", "INT16"}:
        out = t[op.outputs[0]]
        reqs.append(4 * (int(np.prod(out.shape)) if out.shape else 1))
    reqs += [4 * rank, 4 * n_axis]
    return tuple(reqs)


def greedy_offsets(buffers: list[tuple[int, int, int]]) -> list[int]:
    """Offsets ``GreedyMemoryPlanner`` gives (size, first_used, last_used) buffers.

    The same algorithm as ``greedy_memory_planner.cc``: buffers sorted by size, largest first
    (a stable bubble sort over the buffers in reverse order of addition, so ties keep that
    order); each placed at the lowest offset where it fits between buffers already placed that
    are live at an overlapping time.
    """
    if not buffers:
        return []
    order = list(range(len(buffers)))[::-1]
    sizes = [buffers[i][0] for i in order]
    swapped = True
    while swapped:  # ReverseSortInPlace: a stable descending bubble sort
        swapped = False
        for i in range(1, len(order)):
            if sizes[i - 1] < sizes[i]:
                sizes[i - 1], sizes[i] = sizes[i], sizes[i - 1]
                order[i - 1], order[i] = order[i], order[i - 1]
                swapped = True
    placed: list[tuple[int, int]] = []  # (offset, buffer id), sorted by offset
    for bid in order:
        size, first, last = buffers[bid]
        candidate = 0
        for offset, other in placed:
            _, o_first, o_last = buffers[other]
            if o_first > last or first > o_last:
                continue  # not live at the same time
            if offset - candidate >= size:
                break
            candidate = max(candidate, offset + buffers[other][0])
        placed.append((candidate, bid))
        placed.sort(key=lambda e: e[0])
    offsets = [0] * len(buffers)
    for offset, bid in placed:
        offsets[bid] = offset
    return offsets


def greedy_plan_size(buffers: list[tuple[int, int, int]]) -> int:
    """Arena size ``GreedyMemoryPlanner`` reaches for (size, first_used, last_used) buffers."""
    offsets = greedy_offsets(buffers)
    return max((o + b[0] for o, b in zip(offsets, buffers, strict=True)), default=0)


def planned_buffers(
    graph: Graph, scratch: dict[int, tuple[int, ...]] | None = None
) -> list[tuple[int, int, int]]:
    """(aligned size, first, last) of every buffer the planner places, in TFLite Micro's order
    (tensors by index, then scratch requests in op order), lifetimes as
    ``AllocationInfoBuilder::MarkAllocationLifetimes`` sets them: inputs at scope 0, op ``i`` at
    scope ``i + 1``, outputs live to the end. ``scratch`` overrides an op's scratch requests."""
    n = len(graph.tensors)
    first = [-1] * n
    last = [-1] * n
    for i in graph.inputs:
        first[i] = 0 if first[i] < 0 else first[i]
        last[i] = 0
    requests: list[tuple[int, int]] = []
    scope = 0
    for op in graph.ops:
        scope += 1
        for i in op.outputs:
            if first[i] < 0:
                first[i] = scope
        for i in op.inputs:
            if i >= 0:
                last[i] = scope
        for i in op.outputs:
            last[i] = scope
        own = scratch.get(op.index) if scratch is not None else None
        for r in own if own is not None else _reference_scratch(graph, op):
            requests.append((r, scope))
    for i in graph.outputs:
        if first[i] < 0:
            first[i] = scope
        last[i] = scope
    buffers = []
    for i, t in enumerate(graph.tensors):
        if t.constant or t.variable or t.bytes == 0:
            continue
        if first[i] < 0:  # never produced or consumed: TFLM would reject the model
            continue
        buffers.append((align_up(t.bytes), first[i], last[i]))
    buffers += [(align_up(r), s, s) for r, s in requests]
    return buffers


# ---------------------------------------------------------------------------------------------
# 3. The estimate
# ---------------------------------------------------------------------------------------------


@dataclass
class ArenaEstimate:
    """Recommended ``kTensorArenaSize`` for a Cortex-M running TFLite Micro with CMSIS-NN.

    ``total = align16(host_measured + cmsis_growth + kernel_persistent + margin)`` where
    ``host_measured = max(host_reported, host_minimum)`` and ``cmsis_growth =
    max(cmsis_scratch, planner_increase, planning_records)``; never below ``host_measured``.
    """

    host_measured: int
    host_reported: int
    host_minimum: int | None
    host_planned: int
    host_persistent: int
    cmsis_scratch: int
    per_op: list[OpScratch]
    planner_increase: int
    planner_matches_host: bool
    planning_records: int
    cmsis_growth: int
    kernel_persistent: int
    margin: int
    total: int
    method: str
    notes: list[str] = field(default_factory=list)
    device: dict[str, Any] | None = None  # the 32-bit measurement, when it set ``total``

    @property
    def largest(self) -> OpScratch | None:
        return max(self.per_op, key=lambda s: s.bytes, default=None)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["per_op"] = [{**asdict(s), "bytes": s.bytes} for s in self.per_op]
        return d

    def breakdown(self) -> list[tuple[str, int]]:
        """(what, bytes) lines that add up to ``total`` before the final rounding."""
        if self.device is not None:
            d = self.device
            return [
                (
                    f"smallest arena that allocates and gives the same outputs, measured on a "
                    f"32-bit {d['core']} (TFLite Micro + CMSIS-NN in QEMU {d['machine']}; "
                    f"arena_used_bytes() {d['used']}); the 64-bit host estimate was "
                    f"{d['host_estimate']}",
                    d["smallest"],
                ),
                ("CMSIS-NN scratch not exercised on that core (DSP path run: none)", 0),
                (f"margin {DEVICE_MARGIN:.0%} (compiler and TFLM version drift)", d["margin"]),
            ]
        big = self.largest
        where = f" at {big.op} #{big.index} ({big.kernel})" if big and big.bytes else ""
        minimum = "not measured" if self.host_minimum is None else f"{self.host_minimum}"
        return [
            (
                f"TFLite Micro host runtime, 64-bit: larger of the printed total "
                f"{self.host_reported} ({self.host_planned} planned + {self.host_persistent} "
                f"persistent) and the smallest arena that allocates ({minimum})",
                self.host_measured,
            ),
            (
                f"CMSIS-NN scratch, worst phase: largest per-op buffer {self.cmsis_scratch}"
                f"{where}, planner re-run +{self.planner_increase}, planning records "
                f"{self.planning_records}",
                self.cmsis_growth,
            ),
            ("CMSIS-NN OpData, scratch handles and requests", self.kernel_persistent),
            ("margin (arena alignment, TFLM version drift)", self.margin),
        ]


def arena_estimate(tflite_path: str | Path, *, bisect: bool = True) -> ArenaEstimate:
    """Arena size to declare on a Cortex-M with DSP extension (TFLM + CMSIS-NN): the host
    runtime's worst phase plus what a CMSIS-NN build adds (see the module docstring for each
    term). ``bisect=False`` skips the search for the smallest arena (a few seconds) and trusts
    the printed total, which can be too small."""
    host = host_arena(tflite_path)
    minimum = host_minimum_arena(tflite_path, host.total) if bisect else None
    measured = max(host.total, minimum or 0)
    graph = read_graph(tflite_path)
    per_op = cmsis_scratch(graph)
    largest = max((s.bytes for s in per_op), default=0)

    sim_host = greedy_plan_size(planned_buffers(graph))
    overrides = {s.index: s.requests for s in per_op}
    sim_device = greedy_plan_size(planned_buffers(graph, overrides))
    increase = max(sim_device - sim_host, 0)
    matches = sim_host == host.planned
    notes = []
    if not matches:
        notes.append(
            f"the planner re-run gives {sim_host} B planned where the host measured "
            f"{host.planned} B (an op whose scratch is not modelled): the bound rests on the "
            "largest per-op scratch alone"
        )
        increase = 0
    if minimum is not None and minimum > host.total:
        notes.append(
            f"the host runtime needs {minimum} B to allocate, more than the {host.total} B it "
            "reports afterwards: temporary memory during Prepare or planning is the peak"
        )
    not_int8 = sorted(
        {op.name for op in graph.ops if op.name in CMSIS_NN_OPS}
        - {op.name for op in graph.ops if _int8(graph, op)}
    )
    if not_int8:
        notes.append(f"ops not on int8 tensors, scratch not modelled: {', '.join(not_int8)}")

    n_cmsis_ops = sum(1 for op in graph.ops if op.name in CMSIS_NN_OPS)
    n_requests = sum(len(s.requests) for s in per_op)
    planning = PLANNING_BYTES_PER_BUFFER * n_requests
    growth = max(largest, increase, planning)
    handles = ALIGN + SCRATCH_HANDLE_BYTES * n_requests if n_requests else 0
    kernel_persistent = (
        CMSIS_OPDATA_ALLOWANCE * n_cmsis_ops + handles + SCRATCH_REQUEST_BYTES * n_requests
    )
    total = align_up(measured + growth + kernel_persistent + MARGIN_BYTES)
    method = (
        f"TFLite Micro host runtime {measured} B (64-bit build with reference kernels; the "
        f"larger of its printed total and the smallest arena it allocates in; its 64-bit "
        f"structs bound the 32-bit ones) + CMSIS-NN scratch in the worst phase {growth} B "
        f"({CMSIS_BRANCH}; scratch buffers of different ops are never live together, so the "
        f"largest per-op buffer, {largest} B, bounds the plan) + CMSIS-NN OpData and scratch "
        f"bookkeeping {kernel_persistent} B + margin {MARGIN_BYTES} B, rounded up to 16 B"
    )
    return ArenaEstimate(
        host_measured=measured,
        host_reported=host.total,
        host_minimum=minimum,
        host_planned=host.planned,
        host_persistent=host.persistent,
        cmsis_scratch=largest,
        per_op=per_op,
        planner_increase=increase,
        planner_matches_host=matches,
        planning_records=planning,
        cmsis_growth=growth,
        kernel_persistent=kernel_persistent,
        margin=MARGIN_BYTES,
        total=total,
        method=method,
        notes=notes,
    )


DEVICE_MARGIN = 0.02


def with_device_measurement(
    est: ArenaEstimate, *, core: str, machine: str, used: int, smallest: int
) -> ArenaEstimate:
    """The arena declared from a 32-bit measurement: the smallest working arena + a 2 % margin,
    rounded up to 16 B (the host estimate stays in the record for comparison)."""
    margin = align_up(int(np.ceil(smallest * DEVICE_MARGIN)))
    total = align_up(smallest + margin)
    device = {
        "core": core,
        "machine": machine,
        "used": used,
        "smallest": smallest,
        "margin": margin,
        "host_estimate": est.total,
    }
    method = (
        f"Measured on a 32-bit {core}: TFLite Micro + CMSIS-NN built for it and run in QEMU "
        f"{machine}; the smallest arena that allocates and reproduces the outputs is "
        f"{smallest} B (arena_used_bytes() {used} B), plus a {DEVICE_MARGIN:.0%} margin "
        f"({margin} B), rounded up to 16 B. The 64-bit host estimate below ({est.total} B) is "
        "kept for comparison"
    )
    return replace(est, total=total, method=method, device=device)
