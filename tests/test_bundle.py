"""TensorFlow Lite Micro firmware bundle and its arena size.

What is checked, and what is not:

- The plain-C files (model array, preprocessing/decoding) compile warning-free as C99 with host
  GCC and with arm-none-eabi-gcc for a Cortex-M4F, with no stand-in of anything.
- ``main.cc`` and ``<id>_op_resolver.h`` compile as C++17 against the real TFLite Micro
  headers of ../shared/vendor/tflm-src with ``-DTF_LITE_STATIC_MEMORY``, and stop with the
  bundle's ``#error`` without it. (Linking and running the bundle on a Cortex-M4 in QEMU,
  bit-exact against the Python runtime, is tests/test_measure.py.)
- The C preprocessing, built as a host shared library and called through ctypes, gives the same
  int8 input as the Python preprocessing + quantisation on every window of a real IEEE SPC 2015
  recording (when ../shared/data is present) and on synthetic windows (always).
- The arena estimate is never below the TFLite Micro host runtime's measurement, which a
  bisection on ``arena_size`` confirms.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

from ppgedge.atomic import file_sha256  # noqa: E402
from ppgedge.compress import quantize as Q  # noqa: E402
from ppgedge.compress.runtimes import dequantize, layout_windows, quantize, run_raw  # noqa: E402
from ppgedge.compress.tflite_file import enum_names, read_model  # noqa: E402
from ppgedge.data.format import DataFormat, Dataset, write_dataset  # noqa: E402
from ppgedge.data.preprocess import zscore_numpy  # noqa: E402
from ppgedge.data.synth import synthesize  # noqa: E402
from ppgedge.errors import PpgedgeError  # noqa: E402
from ppgedge.export import arena as A  # noqa: E402
from ppgedge.export import bundle as B  # noqa: E402
from ppgedge.export import op_resolver as OPR  # noqa: E402
from ppgedge.models.bpm import DECODERS, decode  # noqa: E402
from ppgedge.models.checkpoint import checkpoint_from_model, save_checkpoint  # noqa: E402
from ppgedge.models.registry import create_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TFLM_SRC = REPO.parent / "shared" / "vendor" / "tflm-src"
TFLM_INCLUDES = ["tflite-micro", "flatbuffers/include", "gemmlowp", "ruy"]
SPC_DIR = REPO.parent / "shared" / "data" / "ieee-spc2015"
SPC_RECORDING = SPC_DIR / "Training_data" / "DATA_01_TYPE01.mat"
CORTEX_M4F = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
WARN = ["-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]
HOSTILE = "3-my model! */ int x; /* ??/"
FMT25 = DataFormat(sample_rate_hz=25.0, channels=("ppg", "acc_x", "acc_y"))


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (CI installs gcc-arm-none-eabi / build-essential)")
    return path


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout}{done.stderr}"


@dataclass
class Model:
    tflite: Path
    fmt: DataFormat
    decode: str
    tracker: dict | None = None  # the checkpoint's temporal tracker, if it has one


def _zoo(arch: str, fmt: DataFormat, dataset: Dataset, out: Path, **kwargs: object) -> Model:
    """A zoo architecture, untrained, calibrated (PTQ) on ``dataset`` and converted."""
    torch.manual_seed(0)
    model = create_model(arch, **kwargs)
    ckpt = save_checkpoint(checkpoint_from_model(model, fmt), out / f"{arch}.pt")
    result = Q.ptq(ckpt, dataset, out / f"{arch}.ptq.int8.pt", n_windows=64)
    return Model(Q.to_tflite(result.path, out / f"{arch}.tflite"), fmt, "argmax")


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_checkpoint: Path, tiny_dataset: Dataset) -> dict[str, Model]:
    """resnet_micro (trained 2 epochs), mlp_micro and dscnn_small (untrained, from the zoo);
    dscnn_small on 3 channels at 25 Hz, so one bundle has a window of 200 samples."""
    out = tmp_path_factory.mktemp("bundle-models")
    result = Q.ptq(tiny_checkpoint, tiny_dataset, out / "resnet.ptq.int8.pt", n_windows=64)
    resnet = Model(
        Q.to_tflite(result.path, out / "resnet_micro.tflite"),
        result.artifact.data_format,
        result.artifact.decode,
        result.artifact.base.tracker,
    )
    ds25 = out / "d25.ppgds"
    write_dataset(synthesize(n_subjects=2, minutes_per_subject=1.0, seed=3, fmt=FMT25), ds25)
    return {
        "resnet_micro": resnet,
        "mlp_micro": _zoo("mlp_micro", tiny_dataset.fmt, tiny_dataset, out),
        "dscnn_small": _zoo("dscnn_small", FMT25, Dataset(ds25), out, in_channels=3),
    }


@pytest.fixture(scope="module")
def bundles(models: dict[str, Model], tmp_path_factory) -> dict[str, B.BundleResult]:
    """One bundle per model; resnet_micro's under a hostile name, with provenance."""
    out = tmp_path_factory.mktemp("bundles")
    made = {}
    for key, m in models.items():
        name = HOSTILE if key == "resnet_micro" else key
        prov = {"parent": {"arch": key, "sha256": "ab" * 32}, "metrics": {"tflm_val_mae": 4.2}}
        made[key] = B.write_bundle(
            m.tflite,
            out / key,
            name=name,
            data_format=m.fmt,
            decode=m.decode,
            provenance=prov,
            tracker=m.tracker,
        )
    return made


# ---------------------------------------------------------------------------------------------
# identifiers, files, manifest
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("3-my model!", "m_3_my_model"),
        ("int", "int_model"),
        ("Modèle-Ü", "modele_u"),
        ("心拍モデル", "model"),
        ("__ppg__net__", "ppg_net"),
        ("class", "class_model"),
        ("main", "main_model"),
        ("", "model"),
        ("x" * 80, "x" * 32),
    ],
)
def test_identifier_from_hostile_names(name: str, expected: str) -> None:
    ident = B.c_identifier(name)
    assert ident == expected
    assert ident.isidentifier() and ident.isascii() and ident == ident.lower()
    assert not ident[0].isdigit() and ident not in B._RESERVED


def test_bundle_files_manifest_and_resolver(bundles, models) -> None:
    res = bundles["resnet_micro"]
    ident = res.identifier
    assert ident == "m_3_my_model_int_x"
    want = {
        f"{ident}_model_data.h",
        f"{ident}_model_data.c",
        f"{ident}_op_resolver.h",
        f"{ident}_config.h",
        f"{ident}_preprocess.h",
        f"{ident}_preprocess.c",
        f"{ident}_tracker.h",  # its checkpoint carries a tracker
        f"{ident}_tracker.c",
        f"{ident}.tflite",
        "main.cc",
        "README.md",
        "manifest.json",
    }
    assert {p.name for p in res.path.iterdir()} == want == {p.name for p in res.files}
    manifest = json.loads((res.path / "manifest.json").read_text())
    assert manifest["schema"] == B.SCHEMA and manifest["identifier"] == ident
    assert {f["path"] for f in manifest["files"]} == want - {"manifest.json"}
    for f in manifest["files"]:
        assert file_sha256(res.path / f["path"]) == f["sha256"]
    assert manifest["arena"]["total"] == res.arena.total
    assert manifest["provenance"]["metrics"]["tflm_val_mae"] == 4.2

    # exactly the model's distinct ops, N = their count
    ops = list(dict.fromkeys(op.name for op in A.read_graph(models["resnet_micro"].tflite).ops))
    header = (res.path / f"{ident}_op_resolver.h").read_text()
    assert f"#define {ident.upper()}_OP_COUNT {len(ops)}" in header
    calls = [line for line in header.splitlines() if "resolver.Add" in line]
    assert [c.split("resolver.")[1].split("(")[0] for c in calls] == [
        OPR.OP_RESOLVER_METHODS[o] for o in ops
    ]
    config = (res.path / f"{ident}_config.h").read_text()
    assert f"#define {ident.upper()}_ARENA_SIZE {res.arena.total}u" in config
    assert f"#define {ident.upper()}_WINDOW_SAMPLES 256" in config
    assert "0: ppg, 1: acc_x, 2: acc_y, 3: acc_z" in config
    decoder = models["resnet_micro"].decode.upper()
    assert f"#define {ident.upper()}_DECODER {ident.upper()}_DECODER_{decoder}" in config
    assert "*/ int x" not in config and "??/" not in config  # the name cannot break comments
    readme = (res.path / "README.md").read_text()
    assert str(res.arena.total) in readme and "against the real TFLite Micro headers" in readme
    assert '"tflm_val_mae": 4.2' in readme
    d25 = (bundles["dscnn_small"].path / "dscnn_small_config.h").read_text()
    assert "#define DSCNN_SMALL_WINDOW_SAMPLES 200" in d25
    assert "#define DSCNN_SMALL_INPUT_CHANNELS 3" in d25


def _tflm_includes() -> list[str]:
    if not TFLM_SRC.is_dir():
        why = f"TFLite Micro sources not found at {TFLM_SRC} (../shared/vendor/tflm-src)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return [arg for d in TFLM_INCLUDES for arg in ("-isystem", str(TFLM_SRC / d))]


def test_resolver_table_matches_the_real_header() -> None:
    """Every Add* name of the table is declared in tflite-micro's micro_mutable_op_resolver.h,
    and every int8-only registration in the kernel header the bundle includes for it."""
    _tflm_includes()
    micro = TFLM_SRC / "tflite-micro/tensorflow/lite/micro"
    header = (micro / "micro_mutable_op_resolver.h").read_text()
    for method in OPR.OP_RESOLVER_METHODS.values():
        assert f"TfLiteStatus {method}(" in header, method
    for op, kernel_header in OPR.INT8_REGISTRATIONS.items():
        assert f"Register_{op}_INT8()" in (micro / "kernels" / kernel_header).read_text(), op


def test_templates_ship_inside_the_package() -> None:
    names = {p.name for p in resources.files(B.TEMPLATES).iterdir()}
    assert {
        "model_data.h",
        "model_data.c",
        "op_resolver.h",
        "config.h",
        "preprocess.h",
        "preprocess.c",
        "main.cc",
        "README.md",
    } <= names
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"ppgedge.export.templates"' in pyproject


# ---------------------------------------------------------------------------------------------
# compiling
# ---------------------------------------------------------------------------------------------


def _compile_all(bundle: B.BundleResult, cc: str, cxx: str, arch: list[str], out: Path) -> Path:
    """Every file of the bundle; returns the model-data object."""
    out.mkdir(parents=True, exist_ok=True)
    ident, src = bundle.identifier, bundle.path
    tracker = [f"{ident}_tracker.c"] if (src / f"{ident}_tracker.c").exists() else []
    for c_file in (f"{ident}_model_data.c", f"{ident}_preprocess.c", *tracker):
        _run(
            [cc, *arch, "-std=c99", *WARN, "-c", str(src / c_file), "-o", str(out / f"{c_file}.o")]
        )
        # and as C++, for projects that compile everything with g++
        _run(
            [
                cxx,
                *arch,
                "-x",
                "c++",
                "-std=c++17",
                *WARN,
                "-c",
                str(src / c_file),
                "-o",
                str(out / f"{c_file}.cxx.o"),
            ]
        )
    _run(
        [
            cxx,
            *arch,
            "-std=c++17",
            *WARN,
            "-DTF_LITE_STATIC_MEMORY",
            *_tflm_includes(),
            "-I",
            str(src),
            "-c",
            str(src / "main.cc"),
            "-o",
            str(out / "main.o"),
        ]
    )
    return out / f"{ident}_model_data.c.o"


def _symbol_alignment(obj: Path, symbol: str) -> tuple[int, int]:
    """(symbol offset in its section, section sh_addralign) read from an ELF relocatable."""
    data = obj.read_bytes()
    assert data[:4] == b"\x7fELF" and data[5] == 1, "little-endian ELF expected"
    is64 = data[4] == 2
    if is64:
        shoff = struct.unpack_from("<Q", data, 0x28)[0]
        shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
        fmt, keys = "<IIQQQQIIQQ", 10
    else:
        shoff = struct.unpack_from("<I", data, 0x20)[0]
        shentsize, shnum = struct.unpack_from("<HH", data, 0x2E)
        fmt, keys = "<IIIIIIIIII", 10
    sections = [struct.unpack_from(fmt, data, shoff + i * shentsize)[:keys] for i in range(shnum)]
    # (name, type, flags, addr, offset, size, link, info, addralign, entsize)
    symtab = next(s for s in sections if s[1] == 2)
    strtab = sections[symtab[6]]
    entsize = symtab[9]
    for k in range(symtab[5] // entsize):
        at = symtab[4] + k * entsize
        if is64:
            name, _info, _other, shndx, value, _size = struct.unpack_from("<IBBHQQ", data, at)
        else:
            name, value, _size, _info, _other, shndx = struct.unpack_from("<IIIBBH", data, at)
        start = strtab[4] + name
        if data[start : data.index(b"\0", start)].decode() == symbol:
            return value, sections[shndx][8]
    raise AssertionError(f"{symbol} not in {obj}")


def test_a_model_with_a_tracker_gets_the_c_tracker(bundles) -> None:
    """The resnet's checkpoint carries a fitted tracker: its bundle has the C tracker (compiled
    with the strict flags by the tests below), the manifest its prior, costs and state size."""
    b = bundles["resnet_micro"]
    man = json.loads((b.path / "manifest.json").read_text())
    tr = man["tracker"]
    assert tr is not None and tr["state_bytes"] <= 1024
    assert len(tr["int_costs"]) == 2 * tr["prior"]["half_width"] + 1
    listed = {f["path"] for f in man["files"]}
    assert {f"{b.identifier}_tracker.c", f"{b.identifier}_tracker.h"} <= listed
    assert json.loads((bundles["mlp_micro"].path / "manifest.json").read_text())["tracker"] is None
    # the example firmware runs it after every window (so the measured image includes it);
    # a bundle without a tracker has no trace of one
    main = (b.path / "main.cc").read_text()
    ident = b.identifier
    assert f'#include "{ident}_tracker.h"' in main and f"{ident}_tracker_reset(&g_tracker)" in main
    assert main.index(f"{ident}_tracker_update(") > main.index("interpreter.Invoke()")
    assert "tracker" not in (bundles["mlp_micro"].path / "main.cc").read_text()


def test_the_bundle_states_the_heart_rates_it_trained_on(bundles, models) -> None:
    """config.h, the manifest and the README carry the training labels' BPM range (from the
    tracker's label histogram) so firmware can flag estimates at its edges; a model without
    one says it is unknown rather than inventing a range. Both headers compile in the tests
    above."""
    b = bundles["resnet_micro"]
    macro = b.identifier.upper()
    counts = np.asarray(models["resnet_micro"].tracker["prior"]["label_counts"])
    seen = np.flatnonzero(counts > 0)
    lo, hi = 30 + int(seen[0]), 30 + int(seen[-1])
    assert 30 <= lo < hi <= 209
    assert json.loads((b.path / "manifest.json").read_text())["trained_bpm"] == [lo, hi]
    config = (b.path / f"{b.identifier}_config.h").read_text()
    assert f"#define {macro}_TRAINED_BPM_KNOWN 1\n" in config
    assert f"#define {macro}_TRAINED_BPM_MIN {lo}\n" in config
    assert f"#define {macro}_TRAINED_BPM_MAX {hi}\n" in config
    assert f"span {lo}-{hi} BPM" in (b.path / "README.md").read_text()
    none = bundles["mlp_micro"]
    assert json.loads((none.path / "manifest.json").read_text())["trained_bpm"] is None
    config = (none.path / f"{none.identifier}_config.h").read_text()
    assert "#define MLP_MICRO_TRAINED_BPM_KNOWN 0\n" in config and "_TRAINED_BPM_MIN" not in config


def test_compiles_with_host_gcc_and_array_is_aligned(bundles, models, tmp_path: Path) -> None:
    cc, cxx = _tool("gcc"), _tool("g++")
    for key in ("resnet_micro", "dscnn_small"):
        obj = _compile_all(bundles[key], cc, cxx, [], tmp_path / key)
        offset, align = _symbol_alignment(obj, f"{bundles[key].identifier}_model_data")
        assert offset % 16 == 0 and align >= 16, (offset, align)
    m = models["mlp_micro"]  # every decoder's branch of <id>_postprocess
    for which in DECODERS:
        res = B.write_bundle(
            m.tflite, tmp_path / which, name=which, data_format=m.fmt, decode=which
        )
        src = res.path / f"{res.identifier}_preprocess.c"
        _run([cc, "-std=c99", *WARN, "-c", str(src), "-o", str(tmp_path / f"{which}.o")])


def test_compiles_for_cortex_m4f_and_array_is_aligned(bundles, tmp_path: Path) -> None:
    cc, cxx = _tool("arm-none-eabi-gcc"), _tool("arm-none-eabi-g++")
    for key in ("resnet_micro", "mlp_micro"):
        obj = _compile_all(bundles[key], cc, cxx, CORTEX_M4F, tmp_path / key)
        offset, align = _symbol_alignment(obj, f"{bundles[key].identifier}_model_data")
        assert offset % 16 == 0 and align >= 16, (offset, align)


def test_headers_refuse_a_build_without_static_memory(bundles, tmp_path: Path) -> None:
    """Without -DTF_LITE_STATIC_MEMORY the app would see another TfLiteTensor layout than the
    library: the op resolver header stops the build with the reason."""
    cxx = _tool("arm-none-eabi-g++")
    res = bundles["mlp_micro"]
    cmd = [cxx, *CORTEX_M4F, "-std=c++17", *_tflm_includes(), "-I", str(res.path), "-c",
           str(res.path / "main.cc"), "-o", str(tmp_path / "main.o")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode != 0
    assert "#error" in done.stderr and "TF_LITE_STATIC_MEMORY" in done.stderr


# ---------------------------------------------------------------------------------------------
# preprocessing and decoding in C vs Python
# ---------------------------------------------------------------------------------------------


class _CLib:
    """The bundle's preprocess.c built as a host shared library."""

    def __init__(self, bundle: B.BundleResult, out: Path) -> None:
        cc = _tool("gcc")
        so = out / f"lib{bundle.identifier}.so"
        src = bundle.path / f"{bundle.identifier}_preprocess.c"
        _run([cc, "-std=c99", *WARN, "-shared", "-fPIC", str(src), "-lm", "-o", str(so)])
        lib = ctypes.CDLL(str(so))
        ident = bundle.identifier
        self.pre = getattr(lib, f"{ident}_preprocess")
        self.pre.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
        self.pre.restype = ctypes.c_int
        self.decoders = {}
        for which in DECODERS:
            fn = getattr(lib, f"{ident}_decode_{which}")
            fn.argtypes, fn.restype = [ctypes.c_void_p], ctypes.c_float
            self.decoders[which] = fn
        self.post = getattr(lib, f"{ident}_postprocess")
        self.post.argtypes, self.post.restype = [ctypes.c_void_p], ctypes.c_float
        self.input = bundle.manifest["model"]["input"]

    def preprocess(self, windows: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(windows, dtype=np.float32)
        n, c, t = x.shape
        out = np.zeros((n, t * c), np.int8)
        for i in range(n):
            rc = self.pre(x[i].ctypes.data, t, c, out[i].ctypes.data)
            assert rc == 0, rc
        return out

    def python(self, windows: np.ndarray) -> np.ndarray:
        """What the Python pipeline feeds the model: zscore_numpy, layout, quantize."""
        x = layout_windows(zscore_numpy(windows), self.input["shape"])
        q = quantize(x, self.input["scale"], self.input["zero_point"])
        return q.reshape(len(windows), -1)


def _compare(lib: _CLib, windows: np.ndarray) -> dict[str, int]:
    diff = np.abs(lib.preprocess(windows).astype(int) - lib.python(windows).astype(int))
    per_window = diff.max(axis=1)
    counts = {f"{k}_step": int((per_window == k).sum()) for k in (0, 1)}
    counts["over_1_step"] = int((per_window > 1).sum())
    counts["values_off_by_1"] = int((diff == 1).sum())
    return counts


def _synthetic_windows(n_channels: int, n_samples: int) -> np.ndarray:
    """Random and adversarial windows: offsets that cancel, constant and tiny channels, huge
    amplitudes that saturate, every sign."""
    rng = np.random.default_rng(11)
    w = []
    for _ in range(48):
        scale = 10.0 ** rng.uniform(-4, 4)
        offset = rng.normal() * 10.0 ** rng.uniform(0, 5)
        w.append(offset + scale * rng.standard_normal((n_channels, n_samples)))
    flat = rng.standard_normal((4, n_channels, n_samples))
    flat[0, 0] = 5.0  # a constant channel: std 0, z = 0
    flat[1] *= 1e-7  # below EPS
    flat[2, :, : n_samples // 2] += 50.0  # a step: saturates
    flat[3] = np.round(flat[3] * 3)  # integer-valued, many exact ties
    return np.concatenate([np.asarray(w), flat]).astype(np.float32)


def test_c_preprocessing_matches_python_on_synthetic_windows(bundles, tmp_path: Path) -> None:
    for key, (c, t) in {"resnet_micro": (4, 256), "dscnn_small": (3, 200)}.items():
        lib = _CLib(bundles[key], tmp_path)
        counts = _compare(lib, _synthetic_windows(c, t))
        print(f"{key} synthetic windows: {counts}")
        assert counts["over_1_step"] == 0, counts
        good = np.ones((c, t), np.float32)
        out = np.zeros(t * c, np.int8)
        assert lib.pre(good.ctypes.data, t - 1, c, out.ctypes.data) == 1  # wrong size
        assert lib.pre(good.ctypes.data, t, c + 1, out.ctypes.data) == 1
        assert lib.pre(None, t, c, out.ctypes.data) == 2
        for bad in (np.nan, np.inf, -np.inf):
            x = good.copy()
            x[c - 1, t // 2] = bad
            assert lib.pre(x.ctypes.data, t, c, out.ctypes.data) == 3


def _spc_windows(fmt: DataFormat) -> np.ndarray:
    if not SPC_RECORDING.is_file():
        pytest.skip(f"IEEE SPC 2015 data not found at {SPC_DIR} (../shared/data)")
    from ppgedge.data.importers import import_dataset

    return import_dataset("spc2015", SPC_RECORDING, fmt).x


def test_c_preprocessing_matches_python_on_a_real_recording(bundles, models, tmp_path) -> None:
    """Every window of IEEE SPC 2015 DATA_01_TYPE01, imported with the project's importer."""
    windows = _spc_windows(models["resnet_micro"].fmt)
    lib = _CLib(bundles["resnet_micro"], tmp_path)
    counts = _compare(lib, windows)
    print(f"SPC 2015 DATA_01_TYPE01, {len(windows)} windows: {counts}")
    assert len(windows) > 100
    assert counts["0_step"] + counts["1_step"] == len(windows)
    assert counts["over_1_step"] == 0, counts


def test_c_decoding_matches_python_on_model_outputs(bundles, models, tiny_dataset, tmp_path):
    m = models["resnet_micro"]
    windows = zscore_numpy(np.asarray(tiny_dataset.x[:96]))
    if SPC_RECORDING.is_file():
        windows = np.concatenate([windows, zscore_numpy(_spc_windows(m.fmt))])
    raw = run_raw(m.tflite, windows, "tflm")  # int8 logits as TFLite Micro computes them
    out = bundles["resnet_micro"].manifest["model"]["output"]
    logits = torch.from_numpy(dequantize(raw, out["scale"], out["zero_point"]))
    lib = _CLib(bundles["resnet_micro"], tmp_path)
    rows = np.ascontiguousarray(raw.reshape(len(raw), -1))
    for which in DECODERS:
        want = decode(logits, which).numpy()
        got = np.array([lib.decoders[which](r.ctypes.data) for r in rows])
        if which == "expectation":
            np.testing.assert_allclose(got, want, atol=2e-3)
        else:  # class decisions: exactly Python's, ties included
            np.testing.assert_array_equal(got, want)
    configured = np.array([lib.post(r.ctypes.data) for r in rows])
    np.testing.assert_allclose(configured, decode(logits, m.decode).numpy(), atol=2e-3)


# ---------------------------------------------------------------------------------------------
# arena
# ---------------------------------------------------------------------------------------------


def test_arena_total_covers_host_measurement(bundles) -> None:
    for key, res in bundles.items():
        est = res.arena
        host = A.host_arena(res.path / f"{res.identifier}.tflite")
        print(
            f"{key}: host printed {host.total} B ({host.planned} planned + {host.persistent} "
            f"persistent), smallest arena {est.host_minimum} B; largest CMSIS-NN scratch "
            f"{est.cmsis_scratch} B, planner increase {est.planner_increase} B, planning "
            f"records {est.planning_records} B, kernel bookkeeping {est.kernel_persistent} B "
            f"-> {est.total} B"
        )
        assert est.host_reported == host.total
        assert est.host_measured == max(host.total, est.host_minimum)
        assert est.total >= est.host_measured + est.cmsis_scratch + est.kernel_persistent
        assert est.total >= est.host_measured + est.planner_increase
        assert est.total % 16 == 0
        assert est.planner_matches_host, est.notes  # the planner re-run reproduces the host
        assert sum(n for _, n in est.breakdown()) <= est.total


def test_smallest_arena_is_exact_and_can_exceed_the_printed_total(bundles) -> None:
    """The bisection's answer allocates and one byte less does not (each try in a child
    process). For the MLP the printed total is too small: a 180-channel FULLY_CONNECTED needs
    temporary memory during Prepare that the final figure does not show."""
    for key, res in bundles.items():
        tflite = res.path / f"{res.identifier}.tflite"
        minimum = res.arena.host_minimum
        assert A.host_arena_fits(tflite, minimum), key
        assert not A.host_arena_fits(tflite, minimum - 1), key
    resnet = bundles["resnet_micro"].arena
    assert resnet.host_minimum == resnet.host_reported
    mlp = bundles["mlp_micro"].arena
    assert mlp.host_minimum > mlp.host_reported and mlp.total > mlp.host_minimum


def test_cmsis_nn_buffer_formulas() -> None:
    """Values worked by hand from CMSIS-NN's get_buffer_size functions (DSP branch)."""
    assert A.convolve_s8_buffer_size(3, 3, 3) == 2 * 28 * 2  # 27 cols -> 28
    assert A.convolve_s8_buffer_size(4, 5, 1) == 2 * 20 * 2
    conv = A.convolve_wrapper_s8_buffer_size
    assert conv((1, 1, 256, 8), (1, 1), 8, (1, 1), (1, 1), (0, 0)) == (
        32,
        "arm_convolve_1x1_s8_fast",
    )
    assert conv((1, 1, 256, 8), (1, 1), 8, (1, 2), (1, 1), (0, 0)) == (0, "arm_convolve_1x1_s8")
    assert conv((1, 1, 256, 4), (1, 5), 4, (1, 1), (1, 1), (0, 2))[1] == "arm_convolve_1_x_n_s8"
    assert conv((1, 1, 256, 3), (1, 5), 3, (1, 1), (1, 1), (0, 2)) == (64, "arm_convolve_s8")
    dw = A.depthwise_conv_wrapper_s8_buffer_size
    assert dw((1, 8, 8, 16), (3, 3), 16, (1, 1), (1, 1)) == (0, "arm_depthwise_conv_3x3_s8")
    assert dw((1, 1, 64, 16), (1, 9), 16, (1, 1), (0, 4)) == (288, "arm_depthwise_conv_s8_opt")
    assert dw((1, 1, 64, 8), (1, 9), 16, (1, 1), (0, 4)) == (0, "arm_depthwise_conv_s8")
    assert A.avgpool_s8_buffer_size(1, 16) == 64
    assert A.fully_connected_s8_buffer_size(180) == 0
    assert A.conv_padding(0, 2, 1, 256, 9) == (3, 128)  # SAME
    assert A.conv_padding(1, 1, 1, 264, 9) == (0, 256)  # VALID


def test_greedy_planner_reuses_memory_by_lifetime() -> None:
    # a (0-1) and c (2-3) never overlap: c reuses a's place; b (1-2) sits above both
    assert A.greedy_plan_size([(64, 0, 1), (32, 1, 2), (48, 2, 3)]) == 96
    assert A.greedy_plan_size([(16, 0, 0), (16, 0, 0)]) == 32
    assert A.greedy_plan_size([]) == 0


# ---------------------------------------------------------------------------------------------
# errors and atomicity
# ---------------------------------------------------------------------------------------------


def _with_opcode(src: Path, dst: Path, op: str, replacement: str, custom: str | None = None):
    model = read_model(src)
    codes = {v: k for k, v in enum_names("BuiltinOperator").items()}
    for code in model.operatorCodes:
        if max(code.builtinCode, code.deprecatedBuiltinCode) == codes[op]:
            code.builtinCode = code.deprecatedBuiltinCode = codes[replacement]
            code.customCode = custom
    import flatbuffers

    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    dst.write_bytes(bytes(builder.Output()))
    return dst


@pytest.mark.parametrize(
    ("replacement", "custom", "shown"),
    [("LSH_PROJECTION", None, "LSH_PROJECTION"), ("CUSTOM", "PpgFancyOp", "CUSTOM:PpgFancyOp")],
)
def test_unsupported_op_is_refused_naming_the_layer(
    models, tmp_path: Path, replacement: str, custom: str | None, shown: str
) -> None:
    m = models["resnet_micro"]
    bad = _with_opcode(m.tflite, tmp_path / "bad.tflite", "MEAN", replacement, custom)
    graph = A.read_graph(m.tflite)
    mean = next(op for op in graph.ops if op.name == "MEAN")
    with pytest.raises(PpgedgeError, match=shown) as err:
        B.write_bundle(bad, tmp_path / "out", name="x", data_format=m.fmt, decode="argmax")
    assert graph.layer(mean) in str(err.value) and f"op #{mean.index}" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_failure_leaves_no_partial_bundle(models, tmp_path: Path, monkeypatch) -> None:
    m = models["mlp_micro"]
    out = tmp_path / "bundle"

    def boom(*_a, **_k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(B.shutil, "copyfile", boom)  # fails after the text files are written
    with pytest.raises(RuntimeError, match="disk full"):
        B.write_bundle(m.tflite, out, name="m", data_format=m.fmt, decode="argmax")
    assert list(tmp_path.iterdir()) == []  # neither the bundle nor its temporary sibling

    monkeypatch.undo()
    B.write_bundle(m.tflite, out, name="m", data_format=m.fmt, decode="argmax")
    before = (out / "manifest.json").read_text()
    monkeypatch.setattr(B.shutil, "copyfile", boom)
    with pytest.raises(RuntimeError):
        B.write_bundle(m.tflite, out, name="m", data_format=m.fmt, decode="expectation")
    assert (out / "manifest.json").read_text() == before  # the earlier bundle is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_refuses_mismatches_and_foreign_directories(models, tmp_path: Path) -> None:
    m = models["resnet_micro"]
    with pytest.raises(PpgedgeError, match="does not fit the data format"):
        B.write_bundle(m.tflite, tmp_path / "a", name="a", data_format=FMT25, decode="argmax")
    with pytest.raises(PpgedgeError, match="unknown decoder"):
        B.write_bundle(m.tflite, tmp_path / "a", name="a", data_format=m.fmt, decode="mode")
    project = tmp_path / "firmware"
    project.mkdir()
    (project / "main.c").write_text("int main(void) { return 0; }\n")
    with pytest.raises(PpgedgeError, match="ppgedge did not write"):
        B.write_bundle(m.tflite, project, name="a", data_format=m.fmt, decode="argmax")
    assert (project / "main.c").is_file()
