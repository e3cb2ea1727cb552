"""``measure``: build a model's firmware for a target's core, run it in QEMU, report the facts.

Measured: int8 outputs against the TFLite Micro Python runtime on the same input tensors; the
C preprocessing against Python's; flash and RAM of the linked firmware image per part; the
arena TFLM reports (``arena_used_bytes()``) on the 32-bit core and the smallest that works;
executed instructions per operator, per Invoke, for preprocessing and decoding; stack use.
Estimated: cycles = instructions x a cycles-per-instruction figure per core
(:mod:`ppgedge.profile.cycles`), because QEMU counts instructions and does not model time.
"""

from __future__ import annotations

import json
import struct
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ppgedge.atomic import file_sha256
from ppgedge.errors import PpgedgeError
from ppgedge.firmware import flash, inputs, qemu
from ppgedge.firmware.boards import Board, board_for
from ppgedge.firmware.build import BUILD_FLAGS, Runtime, cache_root, require_tools
from ppgedge.firmware.images import ModelFiles, build_images
from ppgedge.firmware.sources import locate

SCHEMA = "ppgedge.measure/1"
QEMU_NOTE = (
    "QEMU executes instructions, it does not model time: instruction counts are exact for this "
    "build, cycles are instructions x a stated cycles-per-instruction figure (an ESTIMATE: no "
    "pipeline, flash wait states, caches or bus contention are emulated)"
)
_HEADER = struct.Struct("<4sIIIIIIIIII")


@dataclass(frozen=True)
class DeviceArena:
    core: str
    machine: str
    used: int
    smallest: int


@dataclass
class MeasureReport:
    """Everything ``ppgedge profile --measure`` shows; ``to_dict`` is ``ppgedge.measure/1``."""

    model: dict[str, Any]
    board: dict[str, Any]
    build: dict[str, Any]
    inputs: str
    exact: dict[str, Any]
    preprocessing: dict[str, Any] | None
    flash: dict[str, Any]
    ram: dict[str, Any]
    arena: dict[str, Any]
    instructions: dict[str, Any]
    cycles: dict[str, Any]
    stack_bytes: int
    seconds: dict[str, float] = field(default_factory=dict)
    note: str = QEMU_NOTE

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **asdict(self)}


def _files_for(model: Path, work: Path) -> ModelFiles:
    """A bundle directory (or the bundle beside a .tflite, same sha256), else model-only files."""
    from ppgedge.export.bundle import c_identifier, model_sources
    from ppgedge.export.bundle_manifest import read_bundle_manifest

    candidates = [model] if model.is_dir() else [model.parent / "tflm"]
    for d in candidates:
        man = read_bundle_manifest(d)
        if man is None:
            continue
        ident = str(man.get("identifier", ""))
        tfl = d / f"{ident}.tflite"
        if tfl.is_file() and (model.is_dir() or file_sha256(tfl) == file_sha256(model)):
            return ModelFiles(d, ident, True, tfl)
    if model.is_dir():
        raise PpgedgeError(f"{model}: not a ppgedge bundle directory (no manifest.json)")
    if not model.is_file():
        raise PpgedgeError(f"{model}: no such model file")
    ident = c_identifier(model.stem)
    (work / "model").mkdir(parents=True, exist_ok=True)
    model_sources(model, work / "model", ident)
    return ModelFiles(work / "model", ident, False, model)


def _declared_arena(files: ModelFiles) -> tuple[int, str]:
    """The arena a firmware would declare: the bundle's, else the host estimate."""
    if files.raw:
        man = json.loads((files.dir / "manifest.json").read_text())
        return int(man["arena"]["total"]), "the bundle's " + f"{files.ident.upper()}_ARENA_SIZE"
    from ppgedge.export.arena import arena_estimate

    return arena_estimate(files.tflite).total, "host estimate (ppgedge.export.arena)"


def _inputs_for(files: ModelFiles, data: Path | None, windows: int, seed: int) -> inputs.Inputs:
    if files.raw:
        from ppgedge.data.format import DataFormat

        man = json.loads((files.dir / "manifest.json").read_text())
        fmt = DataFormat.from_dict(man["data_format"])
        if data is not None:
            return inputs.dataset_windows(data, fmt, windows)
        return inputs.noise_windows(fmt, windows, seed)
    if data is not None:
        raise PpgedgeError(f"{files.tflite}: --data needs a ppgedge bundle beside the model")
    from ppgedge.compress.tflite_file import scales_of_tflite

    return inputs.random_int8(list(scales_of_tflite(files.tflite)["input"]["shape"]), windows, seed)


def _read_out(path: Path, n: int) -> tuple[dict[str, int], np.ndarray, np.ndarray, np.ndarray]:
    raw = path.read_bytes()
    fields = _HEADER.unpack_from(raw, 0)
    if fields[0] != b"PPGO":
        raise PpgedgeError(f"{path}: the harness wrote no result")
    keys = ("status", "arena_size", "arena_used", "reserved", "n_ops", "stack_used")
    head = dict(zip(keys, fields[2:8], strict=True))
    in_b, out_b, n_done = fields[8], fields[9], fields[10]
    per = in_b + out_b + 4
    body = np.frombuffer(raw, np.uint8, count=per * n, offset=_HEADER.size).reshape(n, per)
    x = body[:, :in_b].view(np.int8)
    y = body[:, in_b : in_b + out_b].view(np.int8)
    bpm = body[:, in_b + out_b :].copy().view("<f4").reshape(-1)
    head["windows"] = n_done
    return head, x, y, bpm


def _write_in(run_dir: Path, feed: inputs.Inputs, n: int, arena_size: int) -> None:
    head = struct.pack("<4sIIII", b"PPGI", 1, n, feed.item_bytes, arena_size)
    (run_dir / "in.bin").write_bytes(head + feed.items[:n].tobytes())


def run_harness(
    board: Board,
    images: Any,
    feed: inputs.Inputs,
    run_dir: Path,
    cache_dir: Path,
    timeout_s: float,
    what: str,
) -> qemu.Run:
    """Every window of ``feed`` through a harness image in QEMU with the instruction-counting
    plugin (the TFLM image here, the AOT image in ppgedge.aot.verify); a fault is one line."""
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_in(run_dir, feed, len(feed.items), 0)
    result = qemu.run(
        board,
        images.harness.elf,
        mark_address=images.mark_address,
        plugin_so=qemu.plugin(cache_dir),
        workdir=run_dir,
        timeout_s=timeout_s,
    )
    if result.exit_code != 0:
        err = result.stderr.strip()
        raise PpgedgeError(
            f"{what} on {board.machine}: {qemu.explain(result.exit_code)}"
            + (f" ({err.splitlines()[-1][:200]})" if err else "")
        )
    return result


def _smallest_arena(
    board: Board,
    elf: Path,
    trial_dir: Path,
    feed: inputs.Inputs,
    expected: np.ndarray,
    used: int,
    cap: int,
    timeout_s: float,
) -> tuple[int, list[int]]:
    """The smallest arena (bytes) that allocates and gives window 0's outputs, by bisection
    with one fresh emulator run per size (a failed allocation can leave TFLM in a state that
    faults later, so trials never share an interpreter); also the sizes whose run faulted."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    faulted: list[int] = []

    def works(size: int) -> bool:
        _write_in(trial_dir, feed, 1, size)
        (trial_dir / "out.bin").unlink(missing_ok=True)
        r = qemu.run(board, elf, mark_address=None, plugin_so=None, workdir=trial_dir,
                     timeout_s=timeout_s)  # fmt: skip
        if r.exit_code != 0:
            if r.exit_code == 70:
                faulted.append(size)
            return False
        return bool(np.array_equal(_read_out(trial_dir / "out.bin", 1)[2][0], expected))

    lo, hi = max(used - 1, 0), cap
    if lo and works(lo):  # below arena_used_bytes() nothing should work; check, never assume
        lo, hi = 0, lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if works(mid):
            hi = mid
        else:
            lo = mid
    return hi, sorted(faulted)


def _instructions(marks: list[int], n_windows: int, ops: list[str]) -> dict[str, Any]:
    per_window = 6 + 2 * len(ops)
    if len(marks) != per_window * n_windows:
        raise PpgedgeError(
            f"the counting plugin saw {len(marks)} marks, expected {per_window * n_windows} "
            f"({len(ops)} operators x {n_windows} windows): profiler events do not match"
        )
    m = np.array(marks, dtype=np.int64).reshape(n_windows, per_window)
    begins, ends = m[:, 3 : 3 + 2 * len(ops) : 2], m[:, 4 : 4 + 2 * len(ops) : 2]
    op_counts = ends - begins
    invoke = m[:, 3 + 2 * len(ops)] - m[:, 2]
    rows = [
        {
            "index": i,
            "op": op,
            "instructions": float(op_counts[:, i].mean()),
            "min": int(op_counts[:, i].min()),
            "max": int(op_counts[:, i].max()),
        }
        for i, op in enumerate(ops)
    ]
    by_type: dict[str, float] = {}
    for r in rows:
        by_type[r["op"]] = by_type.get(r["op"], 0.0) + r["instructions"]
    return {
        "per_op": rows,
        "per_op_type": by_type,
        "invoke": float(invoke.mean()),
        "invoke_min": int(invoke.min()),
        "invoke_max": int(invoke.max()),
        "outside_ops": float(invoke.mean() - op_counts.sum(axis=1).mean()),
        "preprocess": float((m[:, 1] - m[:, 0]).mean()),
        "decode": float((m[:, -1] - m[:, -2]).mean()),
    }


def _fits(tflite: Path, board: Board) -> None:
    """Refuse before compiling a model whose array alone exceeds the board's code memory."""
    size = tflite.stat().st_size
    if size > board.code_bytes:
        raise PpgedgeError(
            f"{tflite.name}: {size:,} B does not fit the emulated {board.machine} "
            f"({board.code_bytes // 1024} KB code memory)"
        )


def measure(
    model: str | Path,
    target: Any,
    windows: int = 8,
    *,
    data: str | Path | None = None,
    tflm_src: str | Path | None = None,
    cache: str | Path | None = None,
    jobs: int = 0,
    timeout_s: float = 300.0,
    bisect: bool = True,
    seed: int = 0,
    keep: str | Path | None = None,
) -> MeasureReport:
    """Build ``model`` (a .tflite or bundle directory) for ``target``'s core (a Target or a
    core name), run ``windows`` inputs in QEMU and measure (see the module docstring)."""
    from ppgedge.profile.cycles import instruction_cpi

    core = target if isinstance(target, str) else target.core
    board = board_for(core)
    if windows < 1:
        raise PpgedgeError("--windows must be at least 1")
    src = locate(tflm_src)
    compiler = require_tools()
    qemu.require_qemu()
    cache_dir = Path(cache) if cache else cache_root()
    rt = Runtime(src, board, compiler, jobs=jobs, cache=cache_dir)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ppgedge-measure-") as tmp:
        work = Path(keep) if keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if Path(model).is_file():
            _fits(Path(model), board)
        files = _files_for(Path(model), work)
        from ppgedge.export.arena import read_graph

        ops = [op.name for op in read_graph(files.tflite).ops]
        _fits(files.tflite, board)
        feed = _inputs_for(files, Path(data) if data else None, windows, seed)
        declared, declared_from = _declared_arena(files)
        cap = max(declared, 4096) * 2
        images = build_images(
            rt,
            files,
            sorted(set(ops)),
            work / "build",
            firmware_arena=declared,
            harness_arena=cap,
            item_bytes=feed.item_bytes,
        )
        built = time.perf_counter()
        run_dir = work / "run"
        n = len(feed.items)
        result = run_harness(board, images, feed, run_dir, cache_dir, timeout_s, files.tflite.name)
        out, dev_x, dev_y, bpm = _read_out(run_dir / "out.bin", n)
        smallest, faulted = None, []
        if bisect:
            smallest, faulted = _smallest_arena(
                board, images.harness.elf, work / "trial", feed, dev_y[0], out["arena_used"], cap,
                timeout_s,
            )  # fmt: skip
        split = flash.split(images.firmware)
        ran = time.perf_counter()
    ref_y = inputs.host_outputs(files.tflite, dev_x)
    diff = np.abs(dev_y.astype(np.int16) - ref_y.astype(np.int16))
    pre = None
    if feed.raw:
        py_x = inputs.python_inputs(feed.items, files.tflite)
        d = np.abs(dev_x.astype(np.int16) - py_x.astype(np.int16))
        pre = {
            "windows": n,
            "identical_windows": int((d.max(axis=1) == 0).sum()),
            "max_diff": int(d.max()),
            "values_differing": int((d > 0).sum()),
        }
    counts = _instructions(result.marks, n, ops)
    cpi = instruction_cpi(board.core)
    ram = dict(split.ram)
    ram["arena"] = declared
    ram["app"] -= declared
    return MeasureReport(
        model={
            "file": files.tflite.name,
            "sha256": file_sha256(files.tflite),
            "bytes": files.tflite.stat().st_size,
            "ops": ops,
            "bundle": files.raw,
        },
        board={"core": board.core, "machine": board.machine, "flags": board.flags},
        build={
            "compiler": compiler,
            "flags": BUILD_FLAGS,
            "sources": str(src.root),
            "sources_sha256": src.digest,
            "cache": str(rt.dir),
            "runtime_objects_compiled": images.compiled_runtime_objects,
        },
        inputs=feed.origin,
        exact={
            "bit_exact": bool(diff.max() == 0),
            "windows": n,
            "max_diff": int(diff.max()),
            "reference": "TFLite Micro Python runtime (tflite-micro) on the device's int8 inputs",
        },
        preprocessing=pre,
        flash={**split.to_dict()["flash"], "total": split.flash_total},
        ram={**ram, "total": split.ram_total},
        arena={
            "declared": declared,
            "declared_from": declared_from,
            "used": out["arena_used"],
            "smallest": smallest,
            "tried_with": out["arena_size"],
            "sizes_that_faulted": faulted,
        },
        instructions=counts,
        cycles={
            "cpi": cpi.cpi,
            "basis": cpi.basis,
            "invoke": counts["invoke"] * cpi.cpi,
            "per_op": [r["instructions"] * cpi.cpi for r in counts["per_op"]],
            "estimate": True,
        },
        stack_bytes=out["stack_used"],
        seconds={
            "build": round(built - started, 2),
            "emulator": round(result.seconds, 2),
            "total": round(ran - started, 2),
        },
    )


def measure_arena(
    tflite: str | Path, *, core: str = "cortex-m4", tflm_src: str | Path | None = None
) -> DeviceArena:
    """The arena on a 32-bit core: ``arena_used_bytes()`` and the smallest that works."""
    board: Board = board_for(core)
    rep = measure(tflite, core, windows=1, tflm_src=tflm_src)
    return DeviceArena(board.core, board.machine, rep.arena["used"], rep.arena["smallest"])
