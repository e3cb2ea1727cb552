"""Small hostile files: each is at most a few MB on disk but, read naively, would take gigabytes
of memory, minutes of CPU, block forever or read files outside its folder. Through the real
command line every one must end within 10 s of CPU and 1 GB peak RSS, with exit 2 and one line
on stderr, no traceback (issue 13, items 2 and 6).

Time is bounded twice. CPU seconds (user + system, from ``wait4``) bound the work a file makes us
do, and do not grow when the machine is shared: two 10.4 s wall-clock failures came from a suite
run beside two training chains on two cores, with the refusal itself correct. Wall-clock seconds
still catch an input that blocks (a FIFO, a read that never returns), which uses no CPU; that
bound is :data:`LIMIT_WALL_S`, three times the CPU one so that load alone cannot trip it, and far
under the watchdog's :data:`KILL_S`.

Each case runs in a fresh child (``python -m ppgedge``) reaped with :func:`os.wait4`, so its peak
RSS is that child's own ``ru_maxrss``, not the maximum over every child this test process ran.
A watchdog kills a child that passes :data:`KILL_RSS_MB` or :data:`KILL_S`, so a regression fails
the test instead of exhausting the machine.
"""

from __future__ import annotations

import io
import pickle
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

LIMIT_CPU_S = 10.0
LIMIT_WALL_S = 30.0
LIMIT_RSS_MB = 1024.0
KILL_S = 60.0
KILL_RSS_MB = 3072.0
MIB = 1 << 20


# ------------------------------------------------------------------------------ measuring
@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    killed: str = ""

    def describe(self) -> str:
        return (
            f"exit {self.returncode}, {self.seconds:.1f} s wall, {self.cpu_seconds:.1f} s CPU, "
            f"{self.peak_rss_mb:.0f} MB peak RSS"
            f"{', killed: ' + self.killed if self.killed else ''}\nstderr: {self.stderr[-2000:]}"
        )


# Runs the command as its own child and reports that child's peak RSS. Linux keeps a process's
# peak RSS across exec, and a vfork'ed child execs from its parent's memory, so a child started
# straight from pytest (hundreds of MB with torch loaded) would report pytest's size; started from
# this small launcher (python -S, a few MB) it reports its own. The launcher also kills the
# command past the watchdog limits and writes "peak_kb cpu_s killed_reason" to the file in
# argv[1], CPU seconds being the child's user + system time from the same wait4.
LAUNCHER = """
import os, sys, time
out, kill_s, kill_kb, argv = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
pid = os.posix_spawn(argv[0], argv, os.environ)
t0, killed = time.monotonic(), ""
while True:
    done, status, usage = os.wait4(pid, os.WNOHANG)
    if done:
        break
    try:
        with open(f"/proc/{pid}/status") as fh:
            rss = next((int(x.split()[1]) for x in fh if x.startswith("VmRSS:")), 0)
    except OSError:
        rss = 0
    if not killed and (time.monotonic() - t0 > kill_s or rss > kill_kb):
        killed = f"at {rss // 1024} MB RSS" if rss > kill_kb else f"after {kill_s:g} s"
        os.kill(pid, 9)
    time.sleep(0.01)
with open(out, "w") as fh:
    fh.write(f"{usage.ru_maxrss} {usage.ru_utime + usage.ru_stime} {killed}")
sys.exit(os.waitstatus_to_exitcode(status) % 256)
"""


def run_measured(*args: Any, env: dict[str, str] | None = None) -> Outcome:
    """``python -m ppgedge ARGS`` in a fresh child: exit code, output, wall and CPU seconds and
    the child's own peak RSS (``wait4`` in :data:`LAUNCHER`); killed past :data:`KILL_RSS_MB` or
    :data:`KILL_S`."""
    child_env = {"COLUMNS": "120", "PATH": "", "OMP_NUM_THREADS": "1", **(env or {})}
    with (
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
        tempfile.TemporaryDirectory() as tmp,
    ):
        report = Path(tmp) / "rusage"
        command = [sys.executable, "-m", "ppgedge", *map(str, args)]
        limits = [str(KILL_S), str(KILL_RSS_MB * 1024)]
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-S", "-c", LAUNCHER, str(report), *limits, *command],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=child_env,
            timeout=KILL_S + 30,
        )
        seconds = time.perf_counter() - t0
        peak_kb, cpu_s, killed = report.read_text().split(" ", 2)
        out.seek(0)
        err.seek(0)
        code = proc.returncode - 256 if proc.returncode > 128 else proc.returncode
        return Outcome(
            code, out.read(), err.read(), seconds, float(cpu_s), int(peak_kb) / 1024, killed
        )


def assert_refused_in_bounds(outcome: Outcome, needle: str = "") -> None:
    """Exit 2, one ``error:`` line on stderr, no traceback, under 10 s of CPU, 30 s of wall clock
    and 1 GB peak RSS."""
    text = outcome.describe()
    assert not outcome.killed, text
    assert outcome.returncode == 2, text
    assert "Traceback" not in outcome.stderr + outcome.stdout, text
    lines = [ln for ln in outcome.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), text
    assert needle in lines[0], text
    assert 0 < outcome.cpu_seconds < LIMIT_CPU_S, text  # 0 would mean nothing was measured
    assert outcome.seconds < LIMIT_WALL_S, text
    assert outcome.peak_rss_mb < LIMIT_RSS_MB, text


# ------------------------------------------------------------------------------ zip / deflate
def _zero_deflate(prefix: bytes, n_zeros: int) -> tuple[bytes, int, int, int]:
    """A raw deflate stream of ``prefix`` + ``n_zeros`` zero bytes, built without compressing
    gigabytes: after a full flush the compressor's state is reset, so one compressed MiB of
    zeros can be repeated. Returns (stream, uncompressed size, crc32, adler32)."""
    zeros, (blocks, rest) = bytes(MIB), divmod(n_zeros, MIB)
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = co.compress(prefix) + co.flush(zlib.Z_FULL_FLUSH)
    block = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)
    assert co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH) == block
    stream = head + block * blocks + co.compress(bytes(rest)) + co.flush()
    crc, adler = zlib.crc32(prefix), zlib.adler32(prefix)
    for _ in range(blocks):
        crc, adler = zlib.crc32(zeros, crc), zlib.adler32(zeros, adler)
    crc, adler = zlib.crc32(bytes(rest), crc), zlib.adler32(bytes(rest), adler)
    return stream, len(prefix) + n_zeros, crc, adler


def write_zip(path: Path, members: list[tuple[str, bytes, int, int]]) -> None:
    """A zip of already deflated members (name, raw deflate data, uncompressed size, crc32)."""
    body, central = io.BytesIO(), io.BytesIO()
    for name, data, size, crc in members:
        offset = body.tell()
        fields = (20, 0, 8, 0, 0x21, crc, len(data), size, len(name.encode()), 0)
        body.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields) + name.encode() + data)
        central.write(
            struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, *fields, 0, 0, 0, 0, offset)
            + name.encode()
        )
    cd = central.getvalue()
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(cd), body.tell(), 0
    )
    path.write_bytes(body.getvalue() + cd + end)


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


def _deflated(data: bytes) -> bytes:
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    return co.compress(data) + co.flush()


# ------------------------------------------------------------------------------ hostile files
def shared_reference_pickle(path: Path, fans: tuple[int, ...], n: int = 4096) -> Path:
    """A DaLiA subject whose BVP is lists of references to one array: ``fans=(300, 256)`` is
    one 32 KB array referenced 76,800 times (2.5 GB once numpy turns it into one array)."""
    value: Any = np.zeros(n)
    for fan in fans:
        value = [value] * fan
    subject = {
        "subject": "S1",
        "signal": {"wrist": {"BVP": value, "ACC": np.zeros((64, 3))}},
        "label": np.full(5, 72.0),
        "activity": np.ones((16, 1)),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(subject, protocol=2))
    return path


def npz_bomb(path: Path, mib: int = 1200) -> Path:
    """A generic NPZ whose ``ppg`` member is ``mib`` MiB of zeros deflated to about 1/1000."""
    n = mib * MIB // 8
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (n,)}
    )
    stream, size, crc, _ = _zero_deflate(header.getvalue(), n * 8)
    members = [("ppg.npy", stream, size, crc)]
    small = {
        "acc": np.zeros((64, 3)),
        "rate_hz": np.array(64.0),
        "hr_bpm": np.full(4, 72.0),
        "hr_times_s": 4.0 + 2 * np.arange(4.0),
    }
    for key, arr in small.items():
        raw = _npy(arr)
        members.append((f"{key}.npy", _deflated(raw), len(raw), zlib.crc32(raw)))
    write_zip(path, members)
    return path


def _mat_element(mdtype: int, payload: bytes) -> bytes:
    return struct.pack("<II", mdtype, len(payload)) + payload + bytes(-len(payload) % 8)


def mat_bomb(path: Path, mib: int = 1024, *, matching: bool = False) -> Path:
    """A BAMI ``.mat`` whose ``rawPPG`` is one compressed (3, N) double matrix of ``mib`` MiB of
    zeros: about 1 MB on disk. ``matching``: accelerometer and labels as long as the PPG (a
    small, importable file), else a few samples of each."""
    from scipy.io import savemat

    n = mib * MIB // 24
    n_acc, n_bpm = (n, int((n / 50 - 8) // 2) + 1) if matching else (64, 4)
    buf = io.BytesIO()
    small = {"bpm_ecg": np.full(n_bpm, 72.0), "rawAcc": np.full((3, n_acc), 32768, np.uint16)}
    savemat(buf, small, do_compression=True)
    flags = _mat_element(6, struct.pack("<II", 6, 0))  # mxDOUBLE_CLASS
    dims = _mat_element(5, struct.pack("<ii", 3, n))
    name = _mat_element(1, b"rawPPG")
    data_tag = struct.pack("<II", 9, 3 * n * 8)  # miDOUBLE, the zeros follow
    inner = flags + dims + name + data_tag
    matrix_tag = struct.pack("<II", 14, len(inner) + 3 * n * 8)
    stream, _, _, adler = _zero_deflate(matrix_tag + inner, 3 * n * 8)
    zstream = b"\x78\xda" + stream + struct.pack(">I", adler)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue() + struct.pack("<II", 15, len(zstream)) + zstream)
    return path


def checkpoint_with(path: Path, **fields: Any) -> Path:
    """A real (untrained) resnet_micro checkpoint with some fields replaced."""
    import torch

    from ppgedge.data.format import DataFormat
    from ppgedge.models.checkpoint import checkpoint_from_model
    from ppgedge.models.registry import create_model

    raw = checkpoint_from_model(create_model("resnet_micro"), DataFormat()).to_dict()
    torch.save(raw | fields, path)
    return path


def _tflite_schema() -> Any:
    from ppgedge.profile.tflite_reader import schema

    return schema()


def tflite_self_while(path: Path) -> Path:
    """One subgraph whose WHILE operator uses that same subgraph as condition and body: a model
    that never terminates on a device."""
    import flatbuffers

    fb = _tflite_schema()
    model = fb.ModelT()
    model.version = 3
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.WHILE
    model.operatorCodes = [code]
    model.buffers = [fb.BufferT()]
    tensors = []
    for i in range(2):
        t = fb.TensorT()
        t.shape, t.type, t.buffer, t.name = [1, 4], fb.TensorType.INT8, 0, f"t{i}".encode()
        tensors.append(t)
    op = fb.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    op.builtinOptionsType = fb.BuiltinOptions.WhileOptions
    op.builtinOptions = fb.WhileOptionsT()
    op.builtinOptions.condSubgraphIndex = op.builtinOptions.bodySubgraphIndex = 0
    sub = fb.SubGraphT()
    sub.tensors, sub.operators, sub.inputs, sub.outputs = tensors, [op], [0], [1]
    model.subgraphs = [sub]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


def tflite_many_operators(path: Path, n_ops: int) -> Path:
    """A valid-looking model whose operator vector lists one ADD table ``n_ops`` times: 4 bytes
    per operator, so 10**6 operators fit in 4 MB."""
    import flatbuffers

    fb = _tflite_schema()
    b = flatbuffers.Builder(1024 + 4 * n_ops)
    names = [b.CreateString(f"t{i}") for i in range(2)]
    tensors = []
    for name in names:
        fb.TensorStartShapeVector(b, 2)
        b.PrependInt32(4)
        b.PrependInt32(1)
        shape = b.EndVector()
        fb.TensorStart(b)
        fb.TensorAddShape(b, shape)
        fb.TensorAddType(b, fb.TensorType.INT8)
        fb.TensorAddBuffer(b, 0)
        fb.TensorAddName(b, name)
        tensors.append(fb.TensorEnd(b))

    def int_vector(values: list[int]) -> int:
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependInt32(v)
        return b.EndVector()

    op_in, op_out = int_vector([0, 0]), int_vector([1])
    fb.OperatorStart(b)
    fb.OperatorAddOpcodeIndex(b, 0)
    fb.OperatorAddInputs(b, op_in)
    fb.OperatorAddOutputs(b, op_out)
    op = fb.OperatorEnd(b)
    b.StartVector(4, n_ops, 4)
    for _ in range(n_ops):
        b.PrependUOffsetTRelative(op)
    ops = b.EndVector()
    b.StartVector(4, len(tensors), 4)
    for t in reversed(tensors):
        b.PrependUOffsetTRelative(t)
    tensor_vec = b.EndVector()
    g_in, g_out = int_vector([0]), int_vector([1])
    fb.SubGraphStart(b)
    fb.SubGraphAddTensors(b, tensor_vec)
    fb.SubGraphAddOperators(b, ops)
    fb.SubGraphAddInputs(b, g_in)
    fb.SubGraphAddOutputs(b, g_out)
    sub = fb.SubGraphEnd(b)
    fb.OperatorCodeStart(b)
    fb.OperatorCodeAddBuiltinCode(b, fb.BuiltinOperator.ADD)
    fb.OperatorCodeAddDeprecatedBuiltinCode(b, fb.BuiltinOperator.ADD)
    fb.OperatorCodeAddVersion(b, 1)
    code = fb.OperatorCodeEnd(b)
    fb.BufferStart(b)
    buffer = fb.BufferEnd(b)
    vectors = []
    for item in (sub, code, buffer):
        b.StartVector(4, 1, 4)
        b.PrependUOffsetTRelative(item)
        vectors.append(b.EndVector())
    fb.ModelStart(b)
    fb.ModelAddVersion(b, 3)
    fb.ModelAddSubgraphs(b, vectors[0])
    fb.ModelAddOperatorCodes(b, vectors[1])
    fb.ModelAddBuffers(b, vectors[2])
    b.Finish(fb.ModelEnd(b), file_identifier=b"TFL3")
    path.write_bytes(bytes(b.Output()))
    return path


def onnx_with_external(path: Path, location: str, *, in_attribute: bool = False) -> Path:
    """A small ONNX teacher one of whose tensors keeps its data at ``location`` (external data),
    in the graph's initializers or in a Constant node's attribute."""
    import onnx
    from onnx import TensorProto, helper

    weight = TensorProto()
    weight.name, weight.data_type = "w", TensorProto.FLOAT
    weight.dims.extend([1])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "4")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 256])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 256])
    if in_attribute:
        nodes = [
            helper.make_node("Constant", [], ["w"], value=weight),
            helper.make_node("Mul", ["x", "w"], ["y"]),
        ]
        graph = helper.make_graph(nodes, "teacher", [x], [y])
    else:
        graph = helper.make_graph(
            [helper.make_node("Mul", ["x", "w"], ["y"])], "teacher", [x], [y], [weight]
        )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())  # onnx.save would try to write the data
    assert onnx.load(str(path), load_external_data=False).graph.node
    return path


# ------------------------------------------------------------------------------ the cases
def _dalia(files: Callable[[Path], Path]) -> Callable[[Path, Path], tuple[list[Any], str]]:
    def case(tmp: Path, data: Path) -> tuple[list[Any], str]:
        return ["data", "import", "dalia", files(tmp), "-o", tmp / "out.ppgds"], "shared references"

    return case


def _import(kind: str, make: Callable[[Path], Path], needle: str) -> Callable[..., Any]:
    def case(tmp: Path, data: Path) -> tuple[list[Any], str]:
        return ["data", "import", kind, make(tmp), "-o", tmp / "out.ppgds"], needle

    return case


def _eval(needle: str, **fields: Any) -> Callable[..., Any]:
    def case(tmp: Path, data: Path) -> tuple[list[Any], str]:
        return ["eval", checkpoint_with(tmp / "model.pt", **fields), data], needle

    return case


def _tflite(command: str, make: Callable[[Path], Path], needle: str) -> Callable[..., Any]:
    def case(tmp: Path, data: Path) -> tuple[list[Any], str]:
        return [command, make(tmp / "model.tflite"), "--target", "nrf52840"], needle

    return case


def _onnx(location: str, *, in_attribute: bool = False, symlink: str = "") -> Callable[..., Any]:
    def case(tmp: Path, data: Path) -> tuple[list[Any], str]:
        folder = tmp / "teacher"
        folder.mkdir()
        (tmp / "outside.bin").write_bytes(bytes(4))
        if symlink:
            (folder / location).symlink_to(symlink)
        teacher = onnx_with_external(folder / "t.onnx", location, in_attribute=in_attribute)
        args = ["distill", data, "-t", teacher, "-s", "resnet_micro", "-o", tmp / "s.pt"]
        return [*args, "--epochs", "1"], "external weight file"

    return case


def _ensemble_of_largest(tmp: Path, data: Path) -> tuple[list[Any], str]:
    """Every ResNet knob inside its range, together 4e11 parameters; ``ensemble`` builds its
    members from their arguments directly."""
    knobs = {"width": 1024, "depth": 16, "stages": 8, "kernel": 129, "max_width": 4096}
    path = checkpoint_with(tmp / "big.pt", arch_kwargs=knobs)
    return ["ensemble", path, path, "-o", tmp / "s.pt"], "parameters"


def _mat_many_variables(tmp: Path) -> Path:
    """Three extra compressed variables of 60 MiB each: each under a per-variable cap of
    128 MiB, together over the per-file one."""
    path = tmp / "bami" / "subject01.mat"
    mat_bomb(path, mib=1)
    extra = b""
    for k in range(3):
        name = _mat_element(1, f"junk{k}".encode())
        flags = _mat_element(6, struct.pack("<II", 6, 0))
        n = 60 * MIB // 8
        inner = flags + _mat_element(5, struct.pack("<ii", 1, n)) + name
        inner += struct.pack("<II", 9, n * 8)
        stream, _, _, adler = _zero_deflate(
            struct.pack("<II", 14, len(inner) + n * 8) + inner, n * 8
        )
        z = b"\x78\xda" + stream + struct.pack(">I", adler)
        extra += struct.pack("<II", 15, len(z)) + z
    path.write_bytes(path.read_bytes() + extra)
    return path


CASES: dict[str, Callable[[Path, Path], tuple[list[Any], str]]] = {
    "pickle: 2-level shared references (2.5 GB)": _dalia(
        lambda t: shared_reference_pickle(t / "S1" / "S1.pkl", (300, 256))
    ),
    "pickle: 3-level shared references (8 GB)": _dalia(
        lambda t: shared_reference_pickle(t / "S1" / "S1.pkl", (100, 100, 100), 1024)
    ),
    "npz: 1.2 MB inflating to 1.2 GB": _import(
        "generic", lambda t: npz_bomb(t / "rec.npz", 1200), "decompresses to"
    ),
    "mat: one compressed 1 GB variable": _import(
        "bami", lambda t: mat_bomb(t / "bami" / "subject01.mat", 1024), "inflate past"
    ),
    "mat: three 60 MB variables (per-file cap)": _import(
        "bami", _mat_many_variables, "inflate past"
    ),
    "checkpoint: width 200000": _eval("'width' is 200000", arch_kwargs={"width": 200000}),
    "checkpoint: unknown decode": _eval("unknown decoder 'median'", decode="median"),
    "checkpoint: a 10^6 x 10^4 head in layer_shapes": _eval(
        "parameters",
        layer_shapes={"head": {"type": "Linear", "in_features": 10**6, "out_features": 10**4}},
    ),
    "checkpoint: every knob at its maximum, via ensemble": _ensemble_of_largest,
    "checkpoint: metrics of shared references": _eval(
        "shared references", metrics={"curve": [[list(range(1000))] * 1000] * 1000}
    ),
    "tflite: WHILE whose body is its own subgraph": _tflite(
        "check", tflite_self_while, "control-flow cycle"
    ),
    "tflite: 200,000 operators in 0.8 MB": _tflite(
        "profile", lambda p: tflite_many_operators(p, 200_000), "200,000 operators"
    ),
    "onnx: external data in '..'": _onnx("../outside.bin"),
    "onnx: external data through a symlink": _onnx("link.bin", symlink="/etc/passwd"),
    "onnx: external data at /proc/kmsg": _onnx("/proc/kmsg"),
    "onnx: /etc/passwd in a Constant attribute": _onnx("/etc/passwd", in_attribute=True),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_file_is_refused_within_bounds(
    name: str, tmp_path: Path, tiny_dataset_path: Path
) -> None:
    args, needle = CASES[name](tmp_path, tiny_dataset_path)
    inputs = [a for a in args if isinstance(a, Path) and a.is_file()]
    assert all(f.stat().st_size < 10 * MIB for f in inputs), "the case is not a small file"
    outcome = run_measured(*args, env={"PPGEDGE_CACHE": str(tmp_path / "cache")})
    assert_refused_in_bounds(outcome, needle)
    assert not (tmp_path / "out.ppgds").exists() and not (tmp_path / "s.pt").exists()


# ------------------------------------------------------------------------------ in process
def test_materialised_size_counts_references_and_refuses_cycles() -> None:
    from ppgedge.data.safe_pickle import check_materialised, materialised_size
    from ppgedge.errors import PpgedgeError

    a = np.zeros(10)
    # dict: 1 + key and value, "x": 1, list: 1 + 2 references, arrays: 10 each
    assert materialised_size({"x": [a, np.zeros(10)]}) == (27, 27, 3)  # nothing shared
    assert materialised_size({"x": [a, a]}) == (17, 27, 3)
    v: Any = a
    for _ in range(90):  # 2**90 references to one array, counted in linear time
        v = [v, v]
    assert materialised_size(v).expanded == 1 << 62  # saturated, not a 90-bit sum
    v = a
    for _ in range(30):  # 2**30 copies of 10 elements, 31 levels deep
        v = [v, v]
    with pytest.raises(PpgedgeError, match="shared references"):
        check_materialised(v)
    loop: list[Any] = []
    loop.append([loop])
    with pytest.raises(PpgedgeError, match="reference cycle"):
        materialised_size(loop)
    deep: list[Any] = []
    for _ in range(1000):
        deep = [deep]
    with pytest.raises(PpgedgeError, match="nested 1001 deep"):  # MAX_NESTING is 32
        check_materialised(deep)


def test_onnx_external_data_inside_the_folder_still_loads(tmp_path: Path) -> None:
    """The guard refuses only what leaves the folder: a teacher whose weights live in a file of
    a subfolder next to it loads and runs."""
    from onnx import TensorProto, helper

    from ppgedge.data.format import DataFormat
    from ppgedge.distill.teachers import load_teacher

    fmt = DataFormat()
    n_in = len(fmt.channels) * fmt.window_samples
    weights = np.random.default_rng(0).normal(size=(n_in, 180)).astype(np.float32)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "w.bin").write_bytes(weights.tobytes())
    w = TensorProto()
    w.name, w.data_type, w.data_location = "w", TensorProto.FLOAT, TensorProto.EXTERNAL
    w.dims.extend(weights.shape)
    for key, value in (
        ("location", "data/w.bin"),
        ("offset", "0"),
        ("length", str(weights.nbytes)),
    ):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, n_in])
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["x", "shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["y"]),
        ],
        "teacher",
        [
            helper.make_tensor_value_info(
                "x", TensorProto.FLOAT, ["B", len(fmt.channels), fmt.window_samples]
            )
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 180])],
        [w, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "teacher.onnx"
    path.write_bytes(model.SerializeToString())
    teacher = load_teacher(path, fmt)
    assert teacher.kind == "onnx"
    import torch

    x = torch.zeros(2, len(fmt.channels), fmt.window_samples)
    assert tuple(teacher.logits(x).shape) == (2, 180)
