"""A TensorFlow Lite Micro firmware bundle: the model as a C array plus everything around it.

``write_bundle`` turns an int8 ``.tflite`` into a directory a firmware engineer can drop into a
TFLM project: the 16-byte aligned model array, an op resolver with exactly the model's
operators, a config header (arena size, quantisation, data format, decoder), the preprocessing
and decoding in plain C99 (the same arithmetic as the Python pipeline, so the device sees what
validation saw), an example ``main.cc``, a README and a manifest of sha256 sums. The directory
is built beside its destination and renamed into place, so a failure leaves no partial bundle.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import string
import textwrap
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ppgedge import __version__
from ppgedge.atomic import atomic_path, file_sha256
from ppgedge.compress.tflite_file import scales_of_tflite
from ppgedge.data.format import BPM_MIN, DataFormat
from ppgedge.data.preprocess import EPS, check_known
from ppgedge.errors import PpgedgeError
from ppgedge.evaluate.coverage import trained_range
from ppgedge.export.arena import (
    ArenaEstimate,
    Graph,
    arena_estimate,
    read_graph,
    with_device_measurement,
)
from ppgedge.export.op_resolver import ResolverCall, resolver_calls, resolver_fields
from ppgedge.firmware.build import BUILD_FLAGS
from ppgedge.models.bpm import DECODERS, N_CLASSES, SMOOTHING_WEIGHTS
from ppgedge.ownership import BUNDLE, claim

SCHEMA = "ppgedge.tflm_bundle/1"
TEMPLATES = "ppgedge.export.templates"

# C and C++ keywords (C23, C++23) and a few names a bare identifier must not shadow.
_KEYWORDS = """
    alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t
    char16_t char32_t class co_await co_return co_yield compl concept const const_cast consteval
    constexpr constinit continue decltype default delete do double dynamic_cast else enum
    explicit export extern false float for friend goto if inline int long mutable namespace new
    noexcept not not_eq nullptr operator or or_eq private protected public register
    reinterpret_cast requires restrict return short signed sizeof static static_assert
    static_cast struct switch template this thread_local throw true try typedef typeid typename
    typeof typeof_unqual union unsigned using virtual void volatile wchar_t while xor xor_eq
    main std tflite errno assert
"""
_RESERVED = frozenset(_KEYWORDS.split())
_MAX_ID = 32


def c_identifier(name: str) -> str:
    """A safe lowercase C/C++ identifier from a model name: accents folded to ASCII, every other
    character run to ``_``, a leading digit prefixed with ``m_``, keywords suffixed ``_model``,
    at most 32 characters; ``model`` when nothing is left."""
    ascii_name = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    ident = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")[:_MAX_ID].strip("_")
    if not ident:
        return "model"
    if ident[0].isdigit():
        ident = f"m_{ident}"[:_MAX_ID].rstrip("_")
    if ident in _RESERVED:
        ident = f"{ident}_model"
    return ident


def _comment_safe(text: str) -> str:
    """Text that can sit inside /* */ and // comments: printable ASCII only, no comment
    terminators, no trigraphs."""
    out = "".join(c if c.isascii() and c.isprintable() else "_" for c in str(text))
    return out.replace("*/", "*_/").replace("/*", "/_*").replace("??", "?_?").replace("\\", "_")


def _c_string(text: str) -> str:
    """A C string literal: printable ASCII as is, everything else as octal escapes."""
    parts = []
    for byte in str(text).encode("utf-8"):
        ch = chr(byte)
        if 32 <= byte < 127 and ch not in '"\\?':
            parts.append(ch)
        else:
            parts.append(f"\\{byte:03o}")
    return '"' + "".join(parts) + '"'


def _c_float(value: float) -> str:
    """A float32 value as a C float literal that reads back to the same float."""
    v = np.float32(value)
    if not np.isfinite(v):
        raise PpgedgeError(f"cannot write a non-finite constant ({value}) into C")
    text = f"{float(v):.9g}"
    if not any(c in text for c in ".e"):
        text += ".0"
    return f"{text}f"


def _c_bytes(data: bytes, per_line: int = 12) -> str:
    hexes = [f"0x{b:02x}" for b in data]
    return "\n".join(
        "    " + ", ".join(hexes[i : i + per_line]) + "," for i in range(0, len(hexes), per_line)
    )


def _template(filename: str) -> string.Template:
    return string.Template(resources.files(TEMPLATES).joinpath(filename).read_text())


def _fmt_num(x: float) -> str:
    return f"{x:g}"


@dataclass
class BundleResult:
    """What ``write_bundle`` wrote: the directory, its files, the arena estimate, identifiers."""

    path: Path
    identifier: str
    macro_prefix: str
    files: list[Path]
    arena: ArenaEstimate
    ops: list[str]
    manifest: dict[str, Any]


def _io(tflite_path: Path, data_format: DataFormat) -> dict[str, Any]:
    """Input/output tensors checked against the data format and the 180-class output."""
    q = scales_of_tflite(tflite_path)
    inp, out = q["input"], q["output"]
    t, c = data_format.window_samples, len(data_format.channels)
    shape = list(inp["shape"])
    if inp["dtype"] != "INT8" or out["dtype"] != "INT8":
        raise PpgedgeError(
            f"{tflite_path}: input {inp['dtype']}, output {out['dtype']}: the bundle needs a "
            "full-int8 model (ppgedge quantize, then export)"
        )
    if shape == [1, 1, t, c]:
        channel_last = True
    elif shape == [1, c, 1, t]:
        channel_last = False
    else:
        raise PpgedgeError(
            f"{tflite_path}: input shape {shape} does not fit the data format "
            f"({c} channels x {t} samples: expected [1, 1, {t}, {c}])"
        )
    if int(np.prod(out["shape"])) != N_CLASSES or out["shape"][-1] != N_CLASSES:
        raise PpgedgeError(
            f"{tflite_path}: output shape {out['shape']}, expected [1, {N_CLASSES}] "
            f"(one class per BPM from {BPM_MIN})"
        )
    for what, d in (("input", inp), ("output", out)):
        if d["scale"].size != 1 or not float(d["scale"][0]) > 0 or d["zero_point"].size != 1:
            raise PpgedgeError(f"{tflite_path}: {what} is not quantised per tensor")
    return {
        "input": {
            "shape": shape,
            "dtype": "int8",
            "scale": float(inp["scale"][0]),
            "zero_point": int(inp["zero_point"][0]),
            "channel_last": channel_last,
        },
        "output": {
            "shape": list(out["shape"]),
            "dtype": "int8",
            "scale": float(out["scale"][0]),
            "zero_point": int(out["zero_point"][0]),
        },
    }


def _tflm_version() -> str:
    try:
        return importlib.metadata.version("tflite-micro")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


def _arena_comment(est: ArenaEstimate) -> str:
    lines = []
    for what, n in [*est.breakdown(), ("total, rounded up to 16", est.total)]:
        wrapped = textwrap.wrap(_comment_safe(f"{n:>6} B  {what}"), 92)
        lines += [f" *   {wrapped[0]}", *(f" *             {w}" for w in wrapped[1:])]
    return "\n".join(lines)


def _trained_block(macro: str, trained: tuple[int, int] | None) -> str:
    """config.h lines for the heart rates the model trained on: the network does not
    extrapolate in BPM, so firmware can flag an estimate at or past the edges of this range."""
    if trained is None:
        return (
            "/* Heart rates of the training recordings: not recorded by this model (made before\n"
            " * ppgedge stored its label histogram). */\n"
            f"#define {macro}_TRAINED_BPM_KNOWN 0"
        )
    lo, hi = trained
    return (
        f"/* Heart rates of the training recordings: {lo}-{hi} BPM. The network does not\n"
        " * extrapolate in BPM: estimates at or past these edges are the least reliable (see\n"
        " * ppgedge's docs/motion-benchmark.md, heart-rate coverage). */\n"
        f"#define {macro}_TRAINED_BPM_KNOWN 1\n"
        f"#define {macro}_TRAINED_BPM_MIN {lo}\n"
        f"#define {macro}_TRAINED_BPM_MAX {hi}"
    )


def _render(
    *,
    tflite_path: Path,
    data: bytes,
    name: str,
    ident: str,
    data_format: DataFormat,
    decode: str,
    provenance: dict[str, Any],
    io: dict[str, Any],
    calls: list[ResolverCall],
    est: ArenaEstimate,
    main_extra: dict[str, str],
    trained: tuple[int, int] | None = None,
) -> dict[str, str]:
    """File name -> content of every generated text file (``main_extra``: the tracker's lines
    of ``main.cc``, see :func:`ppgedge.export.tracker_c.main_fields`; ``trained``: the training
    labels' BPM range, when the model records it)."""
    macro = ident.upper()
    inp, out = io["input"], io["output"]
    t, c = data_format.window_samples, len(data_format.channels)
    channels = list(data_format.channels)
    sha = file_sha256(tflite_path)
    ch_macros = "\n".join(
        f"#define {macro}_CH_{c_identifier(ch).upper()} {i}" for i, ch in enumerate(channels)
    )
    channel_order = ", ".join(f"{i}: {_comment_safe(ch)}" for i, ch in enumerate(channels))
    layout = "channel-last, out[t * C + c]" if inp["channel_last"] else "channel-first"
    fields: dict[str, Any] = {
        "id": ident,
        "ID": macro,
        "name": _comment_safe(name),
        "version": __version__,
        "tflite_sha256": sha,
        "tflite_name": _comment_safe(tflite_path.name),
        "model_bytes": len(data),
        "model_bytes_c": _c_bytes(data),
        **resolver_fields(calls),
        "build_flags": BUILD_FLAGS,
        "arena_total": est.total,
        "arena_comment": _arena_comment(est),
        "input_dtype": "int8",
        "input_shape_text": "x".join(str(s) for s in inp["shape"]),
        "input_shape_init": "{" + ", ".join(str(s) for s in inp["shape"]) + "}",
        "input_layout": layout,
        "input_bytes": int(np.prod(inp["shape"])),
        "channel_last": 1 if inp["channel_last"] else 0,
        "input_scale": _c_float(inp["scale"]),
        "input_inv_scale": _c_float(np.float32(1.0 / inp["scale"])),
        "input_zero_point": inp["zero_point"],
        "output_dtype": "int8",
        "output_shape_text": "x".join(str(s) for s in out["shape"]),
        "output_bytes": int(np.prod(out["shape"])),
        "output_scale": _c_float(out["scale"]),
        "output_zero_point": out["zero_point"],
        "n_classes": N_CLASSES,
        "bpm_min": BPM_MIN,
        "sample_rate": _c_float(data_format.sample_rate_hz),
        "sample_rate_text": _fmt_num(data_format.sample_rate_hz),
        "window_samples": t,
        "window_s_text": _fmt_num(data_format.window_s),
        "hop_samples": data_format.hop_samples,
        "hop_s_text": _fmt_num(data_format.hop_s),
        "n_channels": c,
        "channel_order_text": channel_order,
        "channel_macros": ch_macros,
        "channel_names_init": "{" + ", ".join(_c_string(ch) for ch in channels) + "}",
        "preprocessing": _comment_safe(data_format.preprocessing),
        "eps": _c_float(EPS),
        "eps_text": f"{EPS:g}",
        "decode": decode,
        "DECODE": decode.upper(),
        "smoothing_taps": len(SMOOTHING_WEIGHTS),
        "smoothing_weights": "{" + ", ".join(str(int(w)) for w in SMOOTHING_WEIGHTS) + "}",
        "trained_block": _trained_block(macro, trained),
    }
    files = {
        f"{ident}_model_data.h": _template("model_data.h").substitute(fields),
        f"{ident}_model_data.c": _template("model_data.c").substitute(fields),
        f"{ident}_op_resolver.h": _template("op_resolver.h").substitute(fields),
        f"{ident}_config.h": _template("config.h").substitute(fields),
        f"{ident}_preprocess.h": _template("preprocess.h").substitute(fields),
        f"{ident}_preprocess.c": _template("preprocess.c").substitute(fields),
        "main.cc": _template("main.cc").substitute(fields, **main_extra),
    }
    files["README.md"] = _readme(fields, est, ident, provenance, inp, out, read_graph(tflite_path))
    return files


def _readme(
    fields: dict[str, Any],
    est: ArenaEstimate,
    ident: str,
    provenance: dict[str, Any],
    inp: dict[str, Any],
    out: dict[str, Any],
    graph: Graph,
) -> str:
    def cell(text: Any) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    described = {
        f"{ident}_model_data.h": 'declares the model array and its length (extern "C")',
        f"{ident}_model_data.c": "the .tflite flatbuffer as a 16-byte aligned const array",
        f"{ident}_op_resolver.h": (
            f"`{ident}_register_ops()`: a `MicroMutableOpResolver<{fields['op_count']}>` with "
            "exactly the model's operators (C++)"
        ),
        f"{ident}_config.h": (
            "arena size, tensor shapes and quantisation, data format, channel order, decoder, "
            "the training heart-rate range"
        ),
        f"{ident}_preprocess.h": "preprocessing and decoding API (C99)",
        f"{ident}_preprocess.c": (
            "z-score + int8 quantisation of a raw window; argmax, expectation and smoothed "
            "decoding (C99)"
        ),
        "main.cc": "example: GetModel, resolver, MicroInterpreter, AllocateTensors, Invoke",
        f"{ident}.tflite": "the same model as a file, for host-side checks",
        "manifest.json": "sha256 of every file, arena breakdown, data format, provenance",
    }
    file_table = "\n".join(f"| `{f}` | {cell(d)} |" for f, d in described.items())
    arena_table = "\n".join(f"| {cell(what)} | {n} |" for what, n in est.breakdown())
    scratch = {s.index: s for s in est.per_op}
    scratch_rows = []  # every operator, named by what it computes (not converter tensor names)
    for op in graph.ops:
        shape = "x".join(str(d) for d in graph.tensors[op.outputs[0]].shape) if op.outputs else ""
        s = scratch.get(op.index)
        kernel = s.kernel if s else "TFLite Micro reference kernel (scratch in the host total)"
        scratch_rows.append(
            f"| {op.index} | {op.name} | {shape} | {cell(kernel)} | {s.bytes if s else 0} |"
        )
    notes = "".join(f"- Note: {cell(n)}\n" for n in est.notes)
    readme_fields = {
        **fields,
        "name": cell(fields["name"]),
        "file_table": file_table,
        "arena_method": cell(est.method),
        "arena_table": arena_table,
        "planner_increase": est.planner_increase,
        "largest_scratch": est.cmsis_scratch,
        "planning_records": est.planning_records,
        "planner_matches": "yes" if est.planner_matches_host else "no",
        "margin": est.margin,
        "arena_notes": notes,
        "scratch_table": "\n".join(scratch_rows) or "| | (no CMSIS-NN operator) | | | 0 |",
        "tflm_version": _tflm_version(),
        "input_scale_text": f"{inp['scale']:.9g}",
        "output_scale_text": f"{out['scale']:.9g}",
        "provenance_json": json.dumps(provenance, indent=2, sort_keys=True, default=str),
    }
    return _template("README.md").substitute(readme_fields)


def _device_arena(tflite_path: Path, est: ArenaEstimate, tflm_src: str | Path | None):
    """``est`` replaced by the 32-bit measurement when TFLM sources are given. Sources passed
    explicitly must work; from the environment, a failure keeps the host estimate with a note."""
    from ppgedge.firmware.sources import ENV

    src = tflm_src if tflm_src is not None else os.environ.get(ENV)
    if not src:
        return est
    from ppgedge.firmware.measure import measure_arena

    try:
        dev = measure_arena(tflite_path, tflm_src=src)
    except PpgedgeError as exc:
        if tflm_src is not None:
            raise
        est.notes.append(f"no 32-bit measurement (${ENV} is set): {exc}")
        return est
    return with_device_measurement(
        est, core=dev.core, machine=dev.machine, used=dev.used, smallest=dev.smallest
    )


def model_sources(tflite_path: str | Path, out_dir: Path, ident: str) -> list[Path]:
    """Only the model array and the op resolver (no data format needed): what a firmware
    build of any int8 model, ours or foreign, takes from the bundle's templates."""
    tflite_path = Path(tflite_path)
    data = tflite_path.read_bytes()
    calls = resolver_calls(tflite_path)
    fields = {
        "id": ident,
        "ID": ident.upper(),
        "name": _comment_safe(tflite_path.name),
        "version": __version__,
        "tflite_sha256": file_sha256(tflite_path),
        "model_bytes": len(data),
        "model_bytes_c": _c_bytes(data),
        **resolver_fields(calls),
    }
    out = []
    for kind in ("model_data.h", "model_data.c", "op_resolver.h"):
        path = out_dir / f"{ident}_{kind}"
        path.write_text(_template(kind).substitute(fields), encoding="utf-8")
        out.append(path)
    return out


def write_bundle(
    tflite_path: str | Path,
    out_dir: str | Path,
    *,
    name: str,
    data_format: DataFormat,
    decode: str,
    provenance: dict[str, Any] | None = None,
    tflm_src: str | Path | None = None,
    tracker: dict[str, Any] | None = None,
) -> BundleResult:
    """Write the TFLite Micro bundle of an int8 ``.tflite`` into ``out_dir`` (atomically).

    ``name`` becomes the C identifier prefix (see :func:`c_identifier`); ``data_format`` and
    ``decode`` are the artifact's (they must fit the model's input and output); ``provenance``
    (parent checkpoint, metrics...) goes into the README and the manifest as given. With TFLM
    sources (``tflm_src`` or ``$PPGEDGE_TFLM_SRC``) the arena is declared from a measurement on
    a 32-bit Cortex-M4 in QEMU, else from the host estimate; the header says which. A
    ``tracker`` record (a checkpoint's) adds ``<id>_tracker.c/.h``, the C temporal tracker.
    """
    tflite_path = Path(tflite_path)
    out_dir = Path(out_dir)
    if decode not in DECODERS:
        raise PpgedgeError(f"unknown decoder '{decode}': use one of {list(DECODERS)}")
    check_known(data_format.preprocessing)
    io = _io(tflite_path, data_format)
    calls = resolver_calls(tflite_path)
    claim(out_dir, BUNDLE, "bundle folder")  # before any work: a new, empty or earlier bundle
    est = _device_arena(tflite_path, arena_estimate(tflite_path), tflm_src)
    ident = c_identifier(name)
    data = tflite_path.read_bytes()
    prov = dict(provenance or {})
    from ppgedge.export.tracker_c import STATE_BYTES, main_fields, render_tracker

    has_tracker = bool(tracker and "prior" in tracker)
    trained = trained_range(tracker)  # None without a label histogram
    texts = _render(
        tflite_path=tflite_path,
        data=data,
        name=name,
        ident=ident,
        data_format=data_format,
        decode=decode,
        provenance=prov,
        io=io,
        calls=calls,
        est=est,
        main_extra=main_fields(ident if has_tracker else None, (tracker or {}).get("decoder")),
        trained=trained,
    )
    tracker_man = None
    if tracker and has_tracker:  # the temporal tracker, quantised to the output scale
        from ppgedge.models.tracker import TransitionPrior

        prior = TransitionPrior.from_dict(tracker["prior"])
        texts.update(render_tracker(name, prior, io["output"]["scale"], ident))
        texts["README.md"] += (
            f"\n## Temporal tracker\n\n`{ident}_tracker.h` / `{ident}_tracker.c` (C99, integer "
            f"only, {STATE_BYTES} B of state): call `{ident}_tracker_reset()` at start-up, at a "
            f"new recording and after any missed window, then `{ident}_tracker_update(&state, "
            f"output->data.int8, {N_CLASSES}, &margin)` per window for the tracked BPM (the "
            f"BPM change per hop is limited to +/-{prior.half_width}"
            + ("" if prior.jump is None else f", or a re-acquire jump at cost {prior.jump:g}")
            + (
                ""
                if prior.label_power is None
                else "; each window's logits are divided by the training heart-rate prior"
            )
            + "; a small `margin` flags an unreliable window). Bit-exact with ppgedge's Python "
            "tracker; see docs/tracker.md.\n"
        )
    if trained is not None:
        texts["README.md"] += (
            f"\n## Trained heart-rate range\n\nThe training recordings' heart rates span "
            f"{trained[0]}-{trained[1]} BPM (`{ident.upper()}_TRAINED_BPM_MIN` / `_MAX` in "
            f"`{ident}_config.h`). The network does not extrapolate in BPM: treat an estimate "
            "at or past these edges as less reliable (`ppgedge verify` splits the errors "
            "below, inside and above this range).\n"
        )
        tracker_man = {
            "prior": prior.to_dict(),
            "int_costs": prior.int_costs(io["output"]["scale"]).tolist(),
            **({} if prior.jump is None else {"int_jump": prior.int_jump(io["output"]["scale"])}),
            **(
                {}
                if prior.label_power is None
                else {"int_label_offsets": prior.int_label_offsets(io["output"]["scale"]).tolist()}
            ),
            "state_bytes": STATE_BYTES,
            "val_decoder": tracker.get("decoder"),
            "val_mae_by_decoder": tracker.get("val_mae_by_decoder"),
            "fitted_on": tracker.get("fitted_on"),
        }
    with atomic_path(out_dir, directory=True, kind=BUNDLE) as tmp:
        for filename, text in texts.items():
            (tmp / filename).write_text(text, encoding="utf-8")
        shutil.copyfile(tflite_path, tmp / f"{ident}.tflite")
        listed = sorted(p.name for p in tmp.iterdir())
        manifest = {
            "schema": SCHEMA,
            "name": name,
            "identifier": ident,
            "macro_prefix": ident.upper(),
            "ppgedge_version": __version__,
            "tflite_micro_version": _tflm_version(),
            "model": {
                "source": tflite_path.name,  # a path here would be a staging directory
                "bytes": len(data),
                "sha256": file_sha256(tflite_path),
                "ops": [c.op for c in calls],
                "int8_kernels": [c.op for c in calls if c.int8],
                **io,
            },
            "data_format": data_format.to_dict(),
            "decode": decode,
            "trained_bpm": None if trained is None else list(trained),
            "tracker": tracker_man,
            "arena": est.to_dict(),
            "provenance": prov,
            "files": [
                {
                    "path": f,
                    "bytes": (tmp / f).stat().st_size,
                    "sha256": file_sha256(tmp / f),
                }
                for f in listed
            ],
        }
        (tmp / "manifest.json").write_text(
            json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8"
        )
    files = [out_dir / f for f in [*listed, "manifest.json"]]
    return BundleResult(
        path=out_dir,
        identifier=ident,
        macro_prefix=ident.upper(),
        files=files,
        arena=est,
        ops=[c.op for c in calls],
        manifest=manifest,
    )
