"""Fuzzing what users get from elsewhere: ``.tflite`` files (``profile``/``check``),
``ppgedge.toml`` configs, raw recordings for the importers, and checkpoints; and the hostile
classes of issue 13: pickles of shared references, NPZ and ``.mat`` compression bombs, and
``.tflite`` control flow whose subgraph references loop or point nowhere.

Property: bad input ends in one :class:`PpgedgeError` (one line and exit 2 through the CLI),
never another exception, a crash or a hang. Every example runs under a deadline and a
hard alarm; a sample of refused cases also goes through the real command line.

``PPGEDGE_FUZZ_REPORT=1`` runs ten times the examples (random, not derandomized) and writes the
case counts to ``benchmarks/results/fuzz.json``; the counts are printed at the end either way.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import random
import resource
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ppgedge.errors import PpgedgeError  # noqa: E402

REPORT = os.environ.get("PPGEDGE_FUZZ_REPORT") == "1"
SCALE = 10 if REPORT else 1
DEADLINE = dt.timedelta(seconds=10)  # a typical example takes 1-50 ms
HANG_S = 30  # SIGALRM: a loop that never ends fails the example instead of the whole run
ROOT = Path(__file__).resolve().parents[1]
MLPERF = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlperf-tiny"
REPORT_PATH = ROOT / "benchmarks" / "results" / "fuzz.json"

COUNTS: dict[str, Counter[str]] = defaultdict(Counter)
FAILURES: Counter[str] = Counter()  # what check() saw besides accept / PpgedgeError


def fuzz(n: int) -> settings:
    return settings(
        max_examples=n * SCALE,
        deadline=DEADLINE,
        derandomize=not REPORT,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
        ],
    )


class Hang(Exception):
    """Raised by the alarm: the code under test ran for longer than HANG_S seconds."""


@contextlib.contextmanager
def hard_limit(seconds: float) -> Iterator[None]:
    def on_alarm(signum: int, frame: Any) -> None:
        raise Hang(f"no answer after {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def check(target: str, fn: Callable[[], object]) -> bool:
    """Run ``fn``; True if it accepted the input, False if it refused it with a PpgedgeError
    (which the CLI prints as one line, newlines escaped). Anything else propagates and fails the
    example (hypothesis shrinks it)."""
    with hard_limit(HANG_S):
        try:
            fn()
        except PpgedgeError as exc:
            assert str(exc).strip(), "an empty error message"
            COUNTS[target]["refused"] += 1
            return False
        except Hang:
            FAILURES["hangs"] += 1
            raise
        except Exception:
            FAILURES["tracebacks"] += 1
            raise
    COUNTS[target]["accepted"] += 1
    return True


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    started = time.perf_counter()
    yield
    total = sum(sum(c.values()) for c in COUNTS.values())
    lines = [f"fuzz cases: {total} in {time.perf_counter() - started:.0f} s"]
    for target, c in sorted(COUNTS.items()):
        lines.append(f"  {target:34s} {sum(c.values()):6d}  {dict(sorted(c.items()))}")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    shown = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
    with shown:  # printed even when pytest captures output
        print("\n" + "\n".join(lines))
    if REPORT:
        import hypothesis

        REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "schema": "ppgedge.fuzz/1",
            "total_cases": total,
            "seconds": round(time.perf_counter() - started, 1),
            "max_examples_scale": SCALE,
            "hypothesis": hypothesis.__version__,
            "python": sys.version.split()[0],
            "property": "every failure is a PpgedgeError (one line, exit 2 in the CLI); no other "
            f"exception, crash or hang (deadline {DEADLINE.total_seconds():g} s, alarm {HANG_S} s)",
            "tracebacks": FAILURES["tracebacks"],
            "hangs": FAILURES["hangs"],
            "files_lost": FAILURES["files_lost"],
            "failed_tests": request.session.testsfailed,
            "peak_rss_mb": {
                # every in-process case, with torch, the converter and the fuzzed models loaded
                "pytest_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                # an upper bound only: Linux keeps the forking pytest's peak across exec, so
                # this is at least pytest's own size; per-case child peaks are measured from a
                # small launcher in tests/test_hostile_inputs.py (each under 1 GB, asserted)
                "cli_children_upper_bound": round(
                    resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
                ),
            },
            "targets": {t: {"cases": sum(c.values()), **c} for t, c in sorted(COUNTS.items())},
        }
        REPORT_PATH.write_text(json.dumps(doc, indent=2) + "\n")


# ------------------------------------------------------------------------------ mutations
def truncations(size: int) -> st.SearchStrategy[tuple[str, Any]]:
    return st.integers(0, max(size - 1, 0)).map(lambda n: ("truncate", n))


def bitflips(size: int) -> st.SearchStrategy[tuple[str, Any]]:
    flip = st.tuples(st.integers(0, size - 1), st.integers(0, 7))
    return st.lists(flip, min_size=1, max_size=16).map(lambda f: ("bitflip", f))


def overwrites(size: int) -> st.SearchStrategy[tuple[str, Any]]:
    put = st.tuples(st.integers(0, size - 1), st.integers(0, 255))
    return st.lists(put, min_size=1, max_size=8).map(lambda f: ("overwrite", f))


def mutations(size: int) -> st.SearchStrategy[tuple[str, Any]]:
    garbage = st.binary(max_size=4096).map(lambda b: ("replace", b))
    return st.one_of(truncations(size), bitflips(size), overwrites(size), garbage)


def mutate(data: bytes, how: tuple[str, Any]) -> bytes:
    kind, arg = how
    if kind == "truncate":
        return data[:arg]
    if kind == "replace":
        return arg
    out = bytearray(data)
    for pos, value in arg:
        if kind == "bitflip":
            out[pos] ^= 1 << value
        else:
            out[pos] = value
    return bytes(out)


# ------------------------------------------------------------------------------ .tflite
@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, tiny_dataset) -> dict[str, bytes]:
    """Our own int8 model (PTQ of an untrained resnet_micro) and the MLPerf Tiny models."""
    from ppgedge.compress import quantize as Q
    from ppgedge.models.checkpoint import checkpoint_from_model, save_checkpoint
    from ppgedge.models.registry import create_model

    work = tmp_path_factory.mktemp("fuzz_models")
    ckpt = save_checkpoint(
        checkpoint_from_model(create_model("resnet_micro"), tiny_dataset.fmt), work / "m.pt"
    )
    art = Q.ptq(ckpt, tiny_dataset, work / "m.int8.pt", n_windows=16).path
    out = {"ours": Q.to_tflite(art, work / "m.tflite").read_bytes()}
    for f in sorted(MLPERF.glob("*.tflite")) if MLPERF.is_dir() else []:
        out[f"mlperf:{f.stem}"] = f.read_bytes()
    return out


def model_bytes(models: dict[str, bytes], source: str) -> dict[str, bytes]:
    chosen = {k: v for k, v in models.items() if k.split(":")[0] == source}
    if not chosen:
        pytest.skip(f"no {source} .tflite models (MLPerf Tiny models not in {MLPERF})")
    return chosen


def profile_and_check(data: bytes) -> None:
    """What ``ppgedge profile`` and ``ppgedge check`` do with a file, in-process."""
    from ppgedge.profile.check import run_check
    from ppgedge.profile.report import build
    from ppgedge.profile.targets import resolve
    from ppgedge.profile.tflite_reader import parse_tflite

    target = resolve("nrf52840")
    report = build(parse_tflite(data, "fuzz.tflite"), target, time.perf_counter())
    run_check(report, target.budget).to_dict()


@fuzz(120)
@given(
    data=st.one_of(
        st.binary(max_size=2048),
        # past the identifier check: 'TFL3' at 4 and a plausible root offset, garbage after
        st.tuples(st.integers(8, 64), st.binary(min_size=8, max_size=2048)).map(
            lambda t: t[0].to_bytes(4, "little") + b"TFL3" + t[1]
        ),
    )
)
def test_tflite_random_bytes(data: bytes) -> None:
    check("tflite: random bytes", lambda: profile_and_check(data))


@pytest.mark.parametrize("source", ["ours", "mlperf"])
def test_tflite_truncated_and_bit_flipped(models: dict[str, bytes], source: str) -> None:
    chosen = model_bytes(models, source)

    @fuzz(60)
    @given(name=st.sampled_from(sorted(chosen)), data=st.data())
    def run(name: str, data: st.DataObject) -> None:
        original = chosen[name]
        how = data.draw(st.one_of(truncations(len(original)), bitflips(len(original))))
        check(f"tflite: {how[0]} ({source})", lambda: profile_and_check(mutate(original, how)))

    for name, original in chosen.items():  # the untouched models are accepted
        assert check(f"tflite: valid ({source})", lambda b=original: profile_and_check(b)), name
    run()


def _fields(obj: Any) -> list[tuple[Any, str, Any]]:
    """(owner, attribute, value) of every scalar or numeric-vector field of a ModelT tree."""
    out = []
    for attr, value in vars(obj).items():
        if isinstance(value, bool | int | float):
            out.append((obj, attr, value))
        elif isinstance(value, np.ndarray):
            if value.size <= 4096:  # not the weight buffers themselves
                out.append((obj, attr, value))
        elif isinstance(value, list):
            if value and all(isinstance(v, int | float) for v in value):
                out.append((obj, attr, value))
            else:
                for item in value:
                    if hasattr(item, "__dict__"):
                        out.extend(_fields(item))
        elif hasattr(value, "__dict__"):
            out.extend(_fields(value))
    return out


EXTREMES = [-(2**31), -1, 0, 1, 2, 3, 7, 8, 127, 255, 256, 2**15, 2**20, 2**31 - 1]
BAD_FLOATS = [math.nan, math.inf, -math.inf, -1.0, 0.0, 1e-45, 1e30]


@pytest.mark.parametrize("source", ["ours", "mlperf"])
def test_tflite_one_field_corrupted(models: dict[str, bytes], source: str) -> None:
    """One field of a valid model set to an extreme value through the flatbuffer object API
    (``ModelT``), then packed again: shapes, indices, types, quantisation, options, versions."""
    import flatbuffers

    from ppgedge.compress.tflite_file import schema

    fb = schema()
    chosen = model_bytes(models, source)

    @fuzz(80)
    @given(name=st.sampled_from(sorted(chosen)), data=st.data())
    def run(name: str, data: st.DataObject) -> None:
        model = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(chosen[name], 0))
        fields = _fields(model)
        owner, attr, value = fields[data.draw(st.integers(0, len(fields) - 1))]
        if isinstance(value, bool):
            new: Any = not value
        elif isinstance(value, float):
            new = data.draw(st.sampled_from(BAD_FLOATS))
        elif isinstance(value, int):
            new = data.draw(st.sampled_from(EXTREMES))
        else:
            arr = np.array(value)
            action = data.draw(st.sampled_from(["set", "empty", "append"]))
            if action == "empty" or arr.size == 0:
                arr = arr[:0]
            elif action == "append":
                arr = np.append(arr, data.draw(st.sampled_from(EXTREMES))).astype(arr.dtype)
            else:
                i = data.draw(st.integers(0, arr.size - 1))
                pool = BAD_FLOATS if arr.dtype.kind == "f" else EXTREMES
                info = None if arr.dtype.kind == "f" else np.iinfo(arr.dtype)
                v = data.draw(st.sampled_from(pool))
                arr.flat[i] = v if info is None else min(max(v, info.min), info.max)
            new = arr if isinstance(value, np.ndarray) else arr.tolist()
        setattr(owner, attr, new)
        builder = flatbuffers.Builder(1024)
        try:
            builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        except Exception:  # noqa: BLE001  the value does not fit the field's type: not a file
            reject()
        packed = bytes(builder.Output())
        check(f"tflite: field corrupted ({source})", lambda: profile_and_check(packed))

    run()


# ------------------------------------------------------------------------------ config
def _known_keys() -> tuple[list[str], list[str]]:
    from ppgedge.pipeline.config import SCHEMA

    return list(SCHEMA), sorted({k for keys in SCHEMA.values() for k in keys})


TOML_VALUES = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats().map(str),  # nan, inf and -inf are TOML too
    st.text(max_size=16).map(json.dumps),
    st.sampled_from(
        ["true", "false", "[]", "[1, 2]", "['a', 'b']", "[[]]", "{x = 1}", "1979-05-27",
         "'lit'", '"""multi"""', "0x10", "1_000", "+inf", "-inf", "nan", "1e400", "-0.0",
         "'", '"', "=", "", "[", "'50%'", "'target'", "'cpu'", "'dkd'", "'ppg,acc_x'",
         "'nrf52840'", "'tflite,tflm'", "'../x'", "0", "-3", "3", "4.0"]
    ),
)  # fmt: skip


def _toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)  # nan, inf and -inf are TOML too
    if isinstance(value, str):
        return json.dumps(value)
    return "[" + ", ".join(_toml_literal(v) for v in value) + "]"


@st.composite
def toml_texts(draw: st.DrawFn) -> str:
    """Mostly well-formed TOML over the real sections and keys, with typed, mistyped and
    extreme values; sometimes a stray line of junk."""
    from ppgedge.pipeline.config import SCHEMA

    lines = []
    for section in draw(st.lists(st.sampled_from([*SCHEMA, "teachr"]), max_size=5, unique=True)):
        lines.append(f"[{section}]")
        known = list(SCHEMA.get(section, {"arch": (str, "")}))
        for key in draw(st.lists(st.sampled_from([*known, "methd"]), max_size=4, unique=True)):
            kind = SCHEMA.get(section, {}).get(key, (str, ""))[0]
            typed = _typed_value(kind).filter(lambda v: v is not None).map(_toml_literal)
            lines.append(f"{key} = {draw(typed | TOML_VALUES)}")
        if draw(st.integers(0, 9)) == 0:
            lines.append(draw(st.text(max_size=30)))
    return "\n".join(lines) + "\n"


def _typed_value(kind: Any) -> st.SearchStrategy[Any]:
    if isinstance(kind, tuple):
        return st.sampled_from(kind)
    return {
        int: st.integers(-3, 50) | st.integers(-(2**70), 2**70),
        float: st.floats(-10, 1e4) | st.floats(),
        str: st.sampled_from(["", "50%", "all", "ppg", "nrf52840", "x"]) | st.text(max_size=8),
        list: st.lists(st.text(max_size=4) | st.integers(), max_size=3),
        bool: st.booleans(),
    }[kind]


ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=6,
)


@st.composite
def config_dicts(draw: st.DrawFn) -> dict[str, Any]:
    from ppgedge.pipeline.config import SCHEMA

    raw: dict[Any, Any] = {}
    for section in draw(st.lists(st.sampled_from(list(SCHEMA)), max_size=6, unique=True)):
        table: dict[Any, Any] = {}
        for key in draw(st.lists(st.sampled_from(list(SCHEMA[section])), max_size=4)):
            junk = draw(st.integers(0, 9)) == 0
            table[key] = draw(ANY_VALUE if junk else _typed_value(SCHEMA[section][key][0]))
        raw[section] = table
    if draw(st.integers(0, 7)) == 0:  # an unknown section, or a section that is not a table
        raw[draw(st.text(max_size=6) | st.sampled_from(list(SCHEMA)))] = draw(ANY_VALUE)
    return raw


def preflight(cfg: Any, out: Path) -> None:
    """The cheap things a run derives from a valid config before training: data format,
    target, export formats, prune budget. They must fail as PpgedgeError too."""
    from ppgedge.compress.prune import parse_budget
    from ppgedge.export.run import parse_formats
    from ppgedge.pipeline.stages import Context

    ctx = Context(cfg, out, cfg["run"]["device"])
    assert ctx.data_format().window_samples >= 8
    ctx.target()
    parse_formats(cfg["export"]["formats"])
    if cfg["prune"]["to"].strip().lower() != "target":
        parse_budget(cfg["prune"]["to"])


@fuzz(300)
@given(text=toml_texts())
def test_config_text(text: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    from ppgedge.pipeline.config import load_run_config

    folder = tmp_path_factory.mktemp("cfg", numbered=True)
    path = folder / "ppgedge.toml"
    path.write_text(text, encoding="utf-8")
    cfg: list[Any] = []
    if check("config: TOML text", lambda: cfg.append(load_run_config(path))):
        check("config: preflight", lambda: preflight(cfg[0], folder / "run"))


@fuzz(400)
@given(raw=config_dicts())
def test_config_dicts(raw: dict[str, Any]) -> None:
    from ppgedge.pipeline.config import RunConfig, validate

    sections: list[Any] = []
    if check("config: dict", lambda: sections.append(validate(raw, "fuzz.toml"))):
        check("config: preflight", lambda: preflight(RunConfig(sections[0]), Path("/nonexistent")))


# ------------------------------------------------------------------------------ importers
@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, bytes]]:
    """One valid input per importer: (file to mutate, path to import, original bytes)."""
    from test_importers import (
        HR,
        dalia_dict,
        n_ref,
        ppg_wave,
        write_bami,
        write_csv,
        write_py2_pickle,
        write_spc,
    )

    root = tmp_path_factory.mktemp("fuzz_recordings")
    write_spc(root / "spc", 30)
    write_bami(root / "bami" / "subject01.mat", 30)
    write_py2_pickle(root / "dalia" / "S1.pkl", dalia_dict(b"S1", 30))
    write_csv(root / "csv" / "bob.csv", 30)
    k = n_ref(30)
    np.savez(
        root / "npz.npz",
        ppg=ppg_wave(30, 64),
        acc=np.zeros((30 * 64, 3)),
        rate_hz=64.0,
        hr_bpm=np.full(k, HR),
        hr_times_s=4.0 + 2 * np.arange(k),
        activity=np.array(["sit", "walk"]),
        activity_start_s=[0.0, 15.0],
        activity_end_s=[15.0, 30.0],
        subject="s1",
    )
    train = root / "spc" / "Training_data"
    cases = {
        "spc2015 signal .mat": (train / "DATA_01_TYPE01.mat", train / "DATA_01_TYPE01.mat"),
        "spc2015 BPM .mat": (train / "DATA_01_TYPE01_BPMtrace.mat", train / "DATA_01_TYPE01.mat"),
        "bami .mat": (root / "bami" / "subject01.mat", root / "bami"),
        "dalia SX.pkl": (root / "dalia" / "S1.pkl", root / "dalia"),
        "generic .npz": (root / "npz.npz", root / "npz.npz"),
        "generic .csv": (root / "csv" / "bob.csv", root / "csv"),
        "generic .labels.csv": (root / "csv" / "bob.labels.csv", root / "csv"),
    }
    return {name: (file, target, file.read_bytes()) for name, (file, target) in cases.items()}


IMPORT_KIND = {"spc2015": "spc2015", "bami": "bami", "dalia": "dalia", "generic": "generic"}


def import_and_validate(kind: str, path: Path) -> None:
    from ppgedge.data.format import validate_windows
    from ppgedge.data.importers import import_dataset

    validate_windows(import_dataset(kind, path))


@pytest.mark.parametrize(
    "case",
    [
        "spc2015 signal .mat",
        "spc2015 BPM .mat",
        "bami .mat",
        "dalia SX.pkl",
        "generic .npz",
        "generic .csv",
        "generic .labels.csv",
    ],
)
def test_importers(recordings: dict[str, tuple[Path, Path, bytes]], case: str) -> None:
    file, target, original = recordings[case]
    kind = IMPORT_KIND[case.split()[0]]
    assert check(f"import: valid {case}", lambda: import_and_validate(kind, target))

    @fuzz(50)
    @given(how=mutations(len(original)))
    def run(how: tuple[str, Any]) -> None:
        file.write_bytes(mutate(original, how))
        check(f"import: {case} {how[0]}", lambda: import_and_validate(kind, target))

    try:
        run()
    finally:
        file.write_bytes(original)


# ------------------------------------------------------------------------------ dataset folders
DATASET_FILES = ["x.npy", "y.npy", "subject.npy", "activity.npy", "recording.npy", "meta.json"]


@pytest.mark.parametrize("name", DATASET_FILES)
def test_dataset_files(tiny_dataset_path: Path, tmp_path: Path, name: str) -> None:
    """One file of a ppgedge dataset folder corrupted: opening it and what ``data info`` reads
    are checked; an accepted dataset must also hand out valid names for every window."""
    import shutil

    from ppgedge.data.format import Dataset

    folder = tmp_path / "d.ppgds"
    shutil.copytree(tiny_dataset_path, folder)
    file = folder / name
    original = file.read_bytes()
    header = min(len(original), 256)  # where the .npy header and most of meta.json are

    def open_and_read() -> None:
        ds = Dataset(folder)
        ds.summary()
        ds.subject_names()
        ds.activity_names()

    n = len(original)
    mutated = st.one_of(truncations(n), bitflips(header), overwrites(header), overwrites(n))

    @fuzz(40)
    @given(how=mutated)
    def run(how: tuple[str, Any]) -> None:
        file.write_bytes(mutate(original, how))
        check(f"dataset: {name} {how[0]}", open_and_read)

    run()


# ------------------------------------------------------------------------------ checkpoints
def test_checkpoint_and_artifact_bytes(
    tiny_checkpoint: Path, tiny_dataset, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Truncated, bit-flipped and overwritten ``.pt`` checkpoints and ``.int8.pt`` artifacts."""
    from ppgedge.compress.quantize import load_artifact, ptq
    from ppgedge.models.checkpoint import load_checkpoint

    work = tmp_path_factory.mktemp("fuzz_ckpt")
    art = ptq(tiny_checkpoint, tiny_dataset, work / "a.int8.pt", n_windows=16).path
    originals = {"checkpoint": tiny_checkpoint.read_bytes(), "artifact": art.read_bytes()}
    path = work / "fuzzed.pt"

    def load(kind: str) -> None:
        if kind == "checkpoint":
            load_checkpoint(path).build()
        else:
            load_artifact(path)

    @fuzz(60)
    @given(kind=st.sampled_from(sorted(originals)), data=st.data())
    def run(kind: str, data: st.DataObject) -> None:
        original = originals[kind]
        how = data.draw(mutations(len(original)))
        path.write_bytes(mutate(original, how))
        check(f"weights: {kind} {how[0]}", lambda: load(kind))

    run()


# ------------------------------------------------------------------------------ hostile classes
SHARED_RECIPES = st.one_of(
    st.tuples(st.just("fans"), st.lists(st.integers(1, 256), min_size=1, max_size=4)),
    st.tuples(st.just("cycle"), st.booleans()),
    st.tuples(st.just("deep"), st.integers(1, 500)),  # pickle.dumps itself recurses
)


def shared_value(n: int, recipe: tuple[str, Any]) -> Any:
    """A value built from one array of ``n`` items: lists that repeat references to it (up to
    4 levels of fans), a reference cycle, or plain deep nesting. (Hypothesis draws the recipe,
    not the value: printing a cyclic or deep value would itself recurse.)"""
    kind, arg = recipe
    value: Any = np.zeros(n)
    if kind == "cycle":
        loop: list[Any] = [value]
        loop.append(loop if arg else [loop])
        return loop
    for fan in arg if kind == "fans" else [1] * arg:
        value = [value] * fan
    return value


@fuzz(60)
@given(
    n=st.integers(1, 4096),
    recipe=SHARED_RECIPES,
    key=st.sampled_from(["BVP", "ACC", "label", "activity"]),
)
def test_shared_reference_pickles(
    n: int, recipe: tuple[str, Any], key: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A DaLiA subject where one field is built from shared references: refused whenever its
    references would materialise more than the file holds plus MAX_SHARED_ELEMENTS, never
    materialised first."""
    import pickle

    from ppgedge.data.safe_pickle import MAX_NESTING, MAX_SHARED_ELEMENTS, materialised_size

    value, kind = shared_value(n, recipe), recipe[0]
    subject: dict[str, Any] = {
        "subject": "S1",
        "signal": {"wrist": {"BVP": np.zeros((640, 1)), "ACC": np.zeros((320, 3))}},
        "label": np.full(2, 72.0),
        "activity": np.ones((40, 1)),
    }
    if key in ("BVP", "ACC"):
        subject["signal"]["wrist"][key] = value
    else:
        subject[key] = value
    path = tmp_path_factory.mktemp("shared", numbered=True) / "S1.pkl"
    path.write_bytes(pickle.dumps(subject, protocol=2))
    bomb = kind == "cycle"
    if not bomb:
        distinct, expanded, depth = materialised_size(subject)
        bomb = expanded > distinct + MAX_SHARED_ELEMENTS or depth > MAX_NESTING
    accepted = check(
        f"import: dalia shared references ({kind})", lambda: import_and_validate("dalia", path)
    )
    assert not (bomb and accepted), "a shared-reference bomb was accepted"


@fuzz(25)
@given(
    mib=st.integers(1, 300),
    lie=st.sampled_from([0, 0, -1, 1, -(2**20), 2**31]),
    bomb_key=st.sampled_from(["ppg", "acc", "junk"]),
)
def test_npz_compression_bombs(
    mib: int, lie: int, bomb_key: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """An NPZ with one member of ``mib`` MiB of zeros deflated about 1000:1, its declared size
    honest or not: refused when the file's members declare more than the per-file limit, never
    inflated past it."""
    import io
    import zlib

    from test_hostile_inputs import _deflated, _npy, _zero_deflate, write_zip

    from ppgedge.data.importers.generic import _npz_limit

    n = mib * (1 << 20) // 8
    shape = (n,) if bomb_key != "acc" else (n // 3, 3)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    stream, size, crc, _ = _zero_deflate(header.getvalue(), 8 * math.prod(shape))
    members = [(f"{bomb_key}.npy", stream, max(size + lie, 0), crc)]
    small = {"ppg": np.zeros(64 * 30), "acc": np.zeros((32 * 30, 3)), "rate_hz": np.array(64.0)}
    small |= {"hr_bpm": np.full(4, 72.0), "hr_times_s": 4.0 + 2 * np.arange(4.0)}
    for key, arr in small.items():
        if key != bomb_key:
            raw = _npy(arr)
            members.append((f"{key}.npy", _deflated(raw), len(raw), zlib.crc32(raw)))
    path = tmp_path_factory.mktemp("npzbomb", numbered=True) / "rec.npz"
    write_zip(path, members)
    declared = sum(m[2] for m in members)
    accepted = check("import: npz compression bomb", lambda: import_and_validate("generic", path))
    assert not (accepted and declared > _npz_limit(path)), "an NPZ bomb was accepted"


@fuzz(25)
@given(sizes=st.lists(st.integers(1, 100), min_size=1, max_size=3))
def test_mat_compression_bombs(sizes: list[int], tmp_path_factory: pytest.TempPathFactory) -> None:
    """A BAMI ``.mat`` with extra compressed variables of ``sizes`` MiB of zeros: refused when
    they inflate past the per-file limit together, whatever each one's size."""
    import struct

    from test_hostile_inputs import _mat_element, _zero_deflate, mat_bomb

    from ppgedge.data.importers.mat_guard import inflated_limit

    path = tmp_path_factory.mktemp("matbomb", numbered=True) / "bami" / "subject01.mat"
    mat_bomb(path, mib=1, matching=True)
    extra = b""
    for k, mib in enumerate(sizes):
        n = mib * (1 << 20) // 8
        inner = _mat_element(6, struct.pack("<II", 6, 0)) + _mat_element(
            5, struct.pack("<ii", 1, n)
        )
        inner += _mat_element(1, f"junk{k}".encode()) + struct.pack("<II", 9, n * 8)
        stream, _, _, adler = _zero_deflate(
            struct.pack("<II", 14, len(inner) + n * 8) + inner, n * 8
        )
        z = b"\x78\xda" + stream + struct.pack(">I", adler)
        extra += struct.pack("<II", 15, len(z)) + z
    data = path.read_bytes() + extra
    path.write_bytes(data)
    inflated = (1 << 20) + sum(sizes) * (1 << 20)
    accepted = check(
        "import: mat compression bomb", lambda: import_and_validate("bami", path.parent)
    )
    assert not (accepted and inflated > inflated_limit(len(data))), "a .mat bomb was accepted"


CONTROL_FLOW = {  # operator -> (options table, fields naming subgraphs)
    "WHILE": ("WhileOptions", ("condSubgraphIndex", "bodySubgraphIndex")),
    "IF": ("IfOptions", ("thenSubgraphIndex", "elseSubgraphIndex")),
    "CALL_ONCE": ("CallOnceOptions", ("initSubgraphIndex",)),
    "CALL": ("CallOptions", ("subgraph",)),
    "STABLEHLO_WHILE": ("StablehloWhileOptions", ("condSubgraphIndex", "bodySubgraphIndex")),
    "STABLEHLO_CASE": ("StablehloCaseOptions", ("branchSubgraphIndices",)),
}


@st.composite
def control_flow_models(draw: st.DrawFn) -> tuple[bytes, list[list[int]]]:
    """A model of 1-6 subgraphs whose operators are control flow naming random subgraphs (in
    range, out of range, negative); returns the file and each subgraph's references."""
    import flatbuffers

    from ppgedge.compress.tflite_file import schema

    fb = schema()
    n_sub = draw(st.integers(1, 6))
    index = st.integers(0, n_sub - 1) | st.sampled_from([-1, n_sub, 2**31 - 1])
    model = fb.ModelT()
    model.version = 3
    model.buffers = [fb.BufferT()]
    kinds = sorted(CONTROL_FLOW)
    model.operatorCodes = []
    for kind in kinds:
        code = fb.OperatorCodeT()
        code.builtinCode = getattr(fb.BuiltinOperator, kind)
        code.deprecatedBuiltinCode = min(code.builtinCode, 127)
        model.operatorCodes.append(code)
    refs: list[list[int]] = []
    model.subgraphs = []
    for _ in range(n_sub):
        sub = fb.SubGraphT()
        sub.tensors = []
        for i in range(2):
            t = fb.TensorT()
            t.shape, t.type, t.buffer, t.name = [1, 4], fb.TensorType.INT8, 0, f"t{i}".encode()
            sub.tensors.append(t)
        sub.inputs, sub.outputs, sub.operators = [0], [1], []
        mine: list[int] = []
        for kind in draw(st.lists(st.sampled_from(kinds), max_size=3)):
            table, fields = CONTROL_FLOW[kind]
            opts = getattr(fb, table + "T")()
            for f in fields:
                value = draw(st.lists(index, max_size=3)) if f.endswith("Indices") else draw(index)
                setattr(opts, f, value)
                mine.extend(value if isinstance(value, list) else [value])
            op = fb.OperatorT()
            op.opcodeIndex, op.inputs, op.outputs = kinds.index(kind), [0], [1]
            if kind.startswith("STABLEHLO"):
                op.builtinOptions2Type = getattr(fb.BuiltinOptions2, table)
                op.builtinOptions2 = opts
            else:
                op.builtinOptionsType = getattr(fb.BuiltinOptions, table)
                op.builtinOptions = opts
            sub.operators.append(op)
        refs.append(mine)
        model.subgraphs.append(sub)
    builder = flatbuffers.Builder(1024)
    try:
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    except TypeError:  # -1 in an unsigned field (CallOptions.subgraph): not a file
        reject()
    return bytes(builder.Output()), refs


def _sound(refs: list[list[int]]) -> bool:
    """Every reference in range and no subgraph reaching itself (a plain reference check)."""
    n = len(refs)
    if any(not 0 <= r < n for rs in refs for r in rs):
        return False
    reach = [set(rs) for rs in refs]
    for _ in range(n):  # transitive closure, fine for 6 subgraphs
        reach = [r.union(*(reach[k] for k in r)) for r in reach]
    return all(s not in reach[s] for s in range(n))


@fuzz(150)
@given(model=control_flow_models())
def test_tflite_subgraph_references(model: tuple[bytes, list[list[int]]]) -> None:
    """Control flow whose subgraph references loop (a WHILE whose body is its own subgraph, or
    A -> B -> A) or point outside the model: the structural read refuses exactly those, and
    ``profile``/``check`` refuse them too (ppgedge profiles single-subgraph models)."""
    from ppgedge.profile.tflite_reader import parse_unvalidated

    data, refs = model
    accepted = check("tflite: subgraph references", lambda: parse_unvalidated(data, "cf.tflite"))
    assert accepted == _sound(refs), refs
    assert not check("tflite: control flow (profile, check)", lambda: profile_and_check(data))


# ------------------------------------------------------------------------------ through the CLI
def _refused_sample(
    rng: random.Random, original: bytes, refused: Callable[[bytes], bool], n: int
) -> list[bytes]:
    """The first ``n`` seeded corruptions of ``original`` that are refused in-process."""
    out: list[bytes] = []
    for _ in range(200):
        how = rng.choice(["truncate", "bitflip", "overwrite"])
        if how == "truncate":
            data = original[: rng.randrange(len(original))]
        else:
            spots = [(rng.randrange(len(original)), rng.randrange(8 if how == "bitflip" else 256))]
            data = mutate(original, (how, spots * rng.randint(1, 6)))
        if refused(data):
            out.append(data)
        if len(out) == n:
            break
    return out


def _refuses(fn: Callable[[], object]) -> bool:
    try:
        with hard_limit(HANG_S):
            fn()
    except PpgedgeError:
        return True
    return False


def test_refused_cases_through_the_cli(
    models: dict[str, bytes],
    recordings: dict[str, tuple[Path, Path, bytes]],
    tmp_path: Path,
) -> None:
    """A seeded sample of refused inputs through the real command line: exit 2, one line
    starting with ``error:``, no traceback, nothing written."""
    from cli_helpers import assert_user_error, ppgedge

    rng = random.Random(8)
    ours = models["ours"]
    tfl = [rng.randbytes(300)]
    tfl += _refused_sample(rng, ours, lambda b: _refuses(lambda: profile_and_check(b)), 2)
    for i, data in enumerate(tfl):
        path = tmp_path / f"bad{i}.tflite"
        path.write_bytes(data)
        command = "profile" if i % 2 == 0 else "check"
        assert_user_error(ppgedge(command, path, "--target", "nrf52840"), str(path))
        COUNTS["cli: " + command]["refused"] += 1

    for i, text in enumerate(["[data]\nminutes = nan\n", "[run\nseed = 1\n"]):
        path = tmp_path / f"bad{i}.toml"
        path.write_text(text)
        assert_user_error(ppgedge("run", "--config", path), str(path))
        COUNTS["cli: run --config"]["refused"] += 1

    for case, kind in (("bami .mat", "bami"), ("dalia SX.pkl", "dalia")):
        file, target, original = recordings[case]
        (bad,) = _refused_sample(
            rng, original, lambda b, f=file, k=kind, t=target: _write_and_refuses(f, b, k, t), 1
        )
        file.write_bytes(bad)
        try:
            out = tmp_path / f"{kind}.ppgds"
            assert_user_error(ppgedge("data", "import", kind, target, "-o", out), file.name)
            assert not out.exists()
            COUNTS["cli: data import"]["refused"] += 1
        finally:
            file.write_bytes(original)


def _write_and_refuses(file: Path, data: bytes, kind: str, target: Path) -> bool:
    file.write_bytes(data)
    return _refuses(lambda: import_and_validate(kind, target))


# ------------------------------------------------------------- hostile folders and names
# Names a user's folder may hold, many shaped like what ppgedge itself writes or stages.
FOLDER_NAMES = st.one_of(
    st.sampled_from(
        [
            "thesis.tex", "meta.json", "manifest.json", "export.json", "sweep.json",
            ".ppgedge.lock", "report.md", "x.npy", "y.npy", "teacher", "data", "export",
            "plots", ".x.old", ".x.old-2", ".x.partial", ".export.tmp-abcd1234",
            ".manifest.json.tmp-zz00__aa", ".dataset.ppgds.old-a1b2c3d4", "sub",
        ]
    ),
    st.text(alphabet="abcxyz._-0123456789", min_size=1, max_size=10).filter(
        lambda n: n not in (".", "..")
    ),
)  # fmt: skip
MARKERS = st.sampled_from(
    [
        b"mine",
        b'{"schema": "ppgedge.dataset/1"}',
        b'{"schema": "ppgedge.run/1", "stages": {}, "owned": ["data", "sub"]}',
        b'{"schema": "ppgedge.export/1", "files": {"t": {"path": "thesis.tex"}}}',
        b'{"schema": "ppgedge.sweep/1"}',
        b'{"schema": "ppgedge.lock/1", "pid": 1, "host": "elsewhere"}',
        b"[1, 2]",
        b"{",
    ]
)


def _digests(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"<dir>"
        for p in sorted(root.rglob("*"))
    }


@fuzz(40)
@given(
    tree=st.dictionaries(FOLDER_NAMES, st.one_of(MARKERS, st.none()), min_size=1, max_size=8),
    nested=st.booleans(),
)
def test_hostile_folders_lose_no_file(tree: dict[str, bytes | None], nested: bool) -> None:
    """Plant a user's folder (files named like ppgedge's markers and staging, markers that lie,
    sub-folders), then let every kind of output claim it and, where the claim is granted, let
    ppgedge write what it writes there. Property: a planted file is only ever replaced when the
    folder's own marker accounts for it; nothing else is lost (counted as ``files_lost``)."""
    import shutil
    import tempfile

    from ppgedge.atomic import atomic_path
    from ppgedge.ownership import DATASET, EXPORT, RUN, SWEEP, claim
    from ppgedge.pipeline.manifest import RunManifest
    from ppgedge.pipeline.run import _remove_stale_staging

    root = Path(tempfile.mkdtemp(prefix="hostile-"))
    try:
        for name, content in tree.items():
            if content is None:
                (root / name).mkdir(exist_ok=True)
                (root / name / (".x.tmp-abcd1234" if nested else "keep.txt")).write_bytes(b"k")
            else:
                (root / name).write_bytes(content)
        before = _digests(root)
        for kind in (DATASET, RUN, EXPORT, SWEEP):
            granted = check(f"ownership: {kind.what}", lambda k=kind: claim(root, k))
            if not granted:
                continue
            allowed = kind.contents(root) if kind.contents else set()
            if kind in (DATASET, EXPORT):  # replaced as a whole, with something new
                with atomic_path(root, directory=True, kind=kind) as tmp:
                    (tmp / "new").write_bytes(b"n")
            elif kind is RUN:
                check("ownership: run staging", lambda: _remove_stale_staging(
                    root, RunManifest.open(root, {})))  # fmt: skip
            after = _digests(root) if root.exists() else {}
            lost = [
                rel
                for rel, data in before.items()
                if after.get(rel) != data and Path(rel).parts[0] not in allowed
                and not (kind is RUN and _is_own_staging(root, rel))
            ]  # fmt: skip
            FAILURES["files_lost"] += len(lost)
            assert not lost, f"{kind.what} lost {lost}"
            if kind in (DATASET, EXPORT):
                break  # the folder was replaced: nothing of the planted tree is left to claim
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _is_own_staging(root: Path, rel: str) -> bool:
    """What the run's cleanup may remove by the rule the (planted) manifest declares: a staging
    name of an owned entry (or the manifest) beside it, or any staging name directly inside an
    owned folder; nothing deeper, nothing of an entry the manifest does not claim."""
    from ppgedge.ownership import STAGING
    from ppgedge.pipeline.manifest import RunManifest

    owned = set(RunManifest.open(root, {}).data["owned"]) if root.is_dir() else set()
    parts = Path(rel).parts
    m = STAGING.match(parts[-1])
    if m is None:
        return False
    if len(parts) == 1:
        return m["name"] in owned | {"manifest.json"}
    return len(parts) == 2 and parts[0] in owned


@pytest.fixture(scope="module")
def named_dataset(tiny_dataset_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import shutil

    copy = tmp_path_factory.mktemp("names") / "names.ppgds"
    shutil.copytree(tiny_dataset_path, copy)
    return copy


@fuzz(60)
@given(name=st.text(min_size=0, max_size=40), field=st.sampled_from(["subjects", "activities"]))
def test_hostile_names_never_reach_a_terminal_raw(named_dataset: Path, name: str, field: str):
    """Any text as a subject or activity name: the dataset is refused (one line) or opens, and
    whatever the CLI would print of it carries no control character and no live markup."""
    from ppgedge.cli.render import SafeConsole
    from ppgedge.data.format import Dataset
    from ppgedge.textsafe import safe_text

    meta_path = named_dataset / "meta.json"
    original = meta_path.read_text()
    meta = json.loads(original)
    meta[field][0] = name
    meta_path.write_text(json.dumps(meta))
    try:
        if check("dataset names", lambda: Dataset(named_dataset).summary()):
            with open(os.devnull, "w") as sink:
                console = SafeConsole(record=True, width=200, file=sink)
                console.print(f"[bold]{safe_text(name)}[/bold]")
                shown = console.export_text()
            assert not any(ord(ch) < 32 and ch != "\n" for ch in shown), repr(shown)
            assert "\x1b" not in shown and "\u202e" not in shown
    finally:
        meta_path.write_text(original)
