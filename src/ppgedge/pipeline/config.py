"""``ppgedge.toml``: the whole chain's settings in one validated file.

Every section and key is declared here with its type and default, so an unknown key, a wrong type
or an impossible value is one clear message naming the file, the section and the key, before any
stage runs. ``ppgedge init`` writes :data:`TEMPLATE`, the defaults with a comment on each key.
"""

from __future__ import annotations

import copy
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ppgedge.compress.defaults import PRUNE_FINAL_EPOCHS, PRUNE_FINETUNE_EPOCHS, PRUNE_STEPS
from ppgedge.data.extra_subjects import check_count as check_extra_count
from ppgedge.data.extra_subjects import subject_names as extra_subject_names
from ppgedge.data.format import resolve_channels
from ppgedge.distill.defaults import DEFAULT_MIX, TEACHER_LABELLED, check_mix
from ppgedge.errors import PpgedgeError
from ppgedge.profile.targets import DEFAULT_TARGET

CONFIG_MAX_BYTES = 1 << 20  # a ppgedge.toml is a few hundred bytes; refuse anything absurd
STRING_MAX_CHARS = 4096  # PATH_MAX: no config string (paths included) is longer
EXPORT_NAME_MAX_CHARS = 64  # file names and C identifiers of the bundle are derived from it
STAGES = ("data", "teacher", "distill", "prune", "qat", "export", "verify", "profile", "check")
DATA_SOURCES = ("synthetic", "dataset", "spc2015", "dalia", "bami", "generic")

# section -> key -> (type, default); a tuple type means "one of these values"
SCHEMA: dict[str, dict[str, tuple[Any, Any]]] = {
    "run": {
        "out": (str, "runs/default"),
        "seed": (int, 0),
        "device": (("auto", "cpu", "cuda"), "auto"),
        "threads": (int, 0),
        "reference_windows": (int, 3000),
        "time_stretch": (("both", "slower", "off"), "both"),
        "ema_decay": (float, 0.0),
    },
    "data": {
        "source": (DATA_SOURCES, "synthetic"),
        "path": (str, ""),
        "subjects": (int, 16),
        "minutes": (float, 10.0),
        "channels": (str, "all"),
        "rate_hz": (float, 32.0),
        "window_s": (float, 8.0),
        "hop_s": (float, 2.0),
        "test_subjects": (list, []),
        "val_subjects": (list, []),
        "val_choice": (("representative", "random"), "representative"),
        "synthetic_motion": (int, 8),
        "synthetic_motion_for": (("all", "teacher"), "teacher"),
        "synthetic_motion_epochs": (("all", "recorded"), "all"),
    },
    "teacher": {
        "path": (str, ""),
        "arch": (str, "resnet_medium"),
        "epochs": (int, 20),
        "patience": (int, 6),
        "motion_aug_p": (float, 0.0),
    },
    "distill": {
        "student": (str, "resnet_small"),
        "method": (("hard", "soft", "dkd", "feature", "progressive"), "dkd"),
        "epochs": (int, 40),  # with function matching: a patient teacher (candidate `patient`)
        "patience": (int, 12),
        "keep_better": (bool, True),
        "augment": (bool, True),
        "mix": (float, DEFAULT_MIX),
        "motion_aug_p": (float, 0.0),
    },
    "prune": {
        "to": (str, "target"),
        "criterion": (("l1", "l2", "taylor"), "l1"),
        "steps": (int, PRUNE_STEPS),
        "finetune_epochs": (int, PRUNE_FINETUNE_EPOCHS),
        "final_epochs": (int, PRUNE_FINAL_EPOCHS),
        "round_to": (int, 4),
        "rebuild": (bool, False),
    },
    "qat": {"epochs": (int, 5), "distill": (bool, True)},
    "export": {"name": (str, "ppg_hr"), "formats": (str, "all")},
    "target": {"name": (str, DEFAULT_TARGET), "path": (str, ""), "targets_dir": (str, "")},
    "budget": {
        "flash_kb": (float, None),
        "sram_kb": (float, None),
        "latency_ms": (float, None),
        "energy_uj": (float, None),
        "period_s": (float, None),
        "mae_bpm": (float, None),
        "max_mae_increase_bpm": (float, None),
    },
}

TEMPLATE = """\
# ppgedge.toml: the whole chain, teacher to firmware bundle. `ppgedge run --config ppgedge.toml`
# Paths are relative to this file. Delete a key to get its default.

[run]
out = "runs/default"      # one folder per stage, manifest.json, report.md
seed = 0
device = "auto"           # auto (CUDA when present), cpu, cuda
threads = 0               # CPU threads for PyTorch/BLAS; 0 = one per core (cap on shared cores)
reference_windows = 3000  # every epoch count and patience below is x max(1, this / training
                          # windows): small data gets as many steps as the default; 0 = off
time_stretch = "both"     # label-scaled time-stretch augmentation of every training stage:
                          # both (faster too: the next window lends the samples), slower, off
ema_decay = 0.0           # training stages validate and keep an exponential moving average
                          # of the weights, this much per step (e.g. 0.99); 0 = off

[data]
source = "synthetic"      # synthetic | dataset (ppgedge dataset) | spc2015 | dalia | bami | generic
path = ""                 # the dataset folder, or the raw recordings for an importer
subjects = 16             # synthetic only: subjects and minutes per subject
minutes = 10.0
channels = "all"          # all | ppg | acc | a list like "ppg,acc_x"
rate_hz = 32.0            # common sample rate, window and hop of the model input
window_s = 8.0
hop_s = 2.0
test_subjects = []        # held-out subjects (default: a seeded 20 %)
val_subjects = []         # early-stopping subjects (default: 15 %, chosen as val_choice says)
val_choice = "representative"  # representative (heart rates like the pool's) | random
synthetic_motion = 8      # synthetic subjects with arm exercise, boxing and stairs lent to
                          # the training subjects only (6 min each); 0 = off
synthetic_motion_for = "teacher"  # teacher (the teacher alone) | all (every training stage);
                          # with [teacher] path the default lends them to no one
synthetic_motion_epochs = "all"  # with "all": what the later stages' epoch scale counts,
                          # all their training windows | recorded (the synthetic on top)

[teacher]
path = ""                 # a trained teacher (checkpoint, TorchScript or ONNX); empty = train one
arch = "resnet_medium"    # `ppgedge models` lists the zoo
epochs = 20
patience = 6
motion_aug_p = 0.0        # share of windows given accelerometer-driven artifacts

[distill]
student = "resnet_small"
method = "dkd"            # hard | soft | dkd | feature | progressive
epochs = 40               # twice the teacher's: function matching pays off with long schedules
patience = 12
keep_better = true        # also train the student from scratch; keep the better on validation
augment = true            # distil on augmented windows, the teacher labelling the same ones
mix = 0.4                 # with augment: half the windows get up to this share (< 0.5) of
                          # another window mixed in, the teacher labelling the mix; 0 = off
                          # (off by itself when augment = false)
motion_aug_p = 0.0        # with augment: share of windows given accelerometer-driven
                          # artifacts, the teacher labelling each corrupted window

[prune]
to = "target"             # "target" (its latency/energy/flash budget), "50%", "30k params"
criterion = "l1"          # l1 | l2 | taylor
steps = 8                 # geometric steps to the budget: small cuts, each fine-tuned
finetune_epochs = 6       # after each step but the last
final_epochs = 20         # the last fine-tune, at the budget
round_to = 4              # channel counts in multiples of this (int8 SIMD friendly)
rebuild = false           # also distil the pruned architecture from a fresh initialisation
                          # (the distill stage's epochs); keep the better on validation

[qat]
epochs = 5
distill = true            # keep the teacher's distillation loss during QAT

[export]
name = "ppg_hr"           # file names and C identifiers of the bundle
formats = "all"           # tflite, tflm, onnx or all

[target]
name = "nrf52840"         # `ppgedge targets` lists them
path = ""                 # or your own target .toml
targets_dir = ""          # a folder of your own target .toml files, found by name

[budget]                  # override the target's default budget (any subset)
# flash_kb = 256
# sram_kb = 64
# latency_ms = 200
# energy_uj = 500
# period_s = 2.0
# mae_bpm = 5.0             # int8 MAE on the verify windows (default: the spectral baseline's)
# max_mae_increase_bpm = 1.0  # int8 MAE minus the float model's (default 1.0)
"""


@dataclass(frozen=True)
class RunConfig:
    """The validated settings: ``sections[section][key]``, plus where they came from."""

    sections: dict[str, dict[str, Any]]
    path: Path | None = None

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.sections[section]

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path is not None else Path.cwd()

    def resolve_path(self, text: str) -> Path:
        p = Path(text).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

    def budget_overrides(self) -> dict[str, float]:
        return {k: v for k, v in self.sections["budget"].items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.sections)


def defaults() -> dict[str, dict[str, Any]]:
    return {s: {k: copy.deepcopy(d) for k, (_, d) in keys.items()} for s, keys in SCHEMA.items()}


def _coerce(value: Any, kind: Any, where: str) -> Any:
    if isinstance(kind, tuple):
        if value not in kind:
            raise PpgedgeError(f"{where} must be one of {', '.join(map(str, kind))}, got {value!r}")
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise PpgedgeError(f"{where} must be {kind.__name__}, got {type(value).__name__} {value!r}")
    return value


def _shown(name: Any) -> str:
    """A name from the file as it can be printed on one line (TOML keys may hold newlines)."""
    text = str(name)
    return text if text.isprintable() else repr(text)[1:-1]


def validate(raw: dict[str, Any], source: str) -> dict[str, dict[str, Any]]:
    """Merge ``raw`` over the defaults, refusing unknown sections/keys and wrong types."""
    sections = defaults()
    for section, table in raw.items():
        if section not in SCHEMA:
            raise PpgedgeError(
                f"{source}: unknown section [{_shown(section)}] (known: {', '.join(SCHEMA)})"
            )
        if not isinstance(table, dict):
            raise PpgedgeError(f"{source}: [{section}] must be a table")
        for key, value in table.items():
            if key not in SCHEMA[section]:
                raise PpgedgeError(
                    f"{source}: unknown key '{_shown(key)}' in [{section}] "
                    f"(known: {', '.join(SCHEMA[section])})"
                )
            kind = SCHEMA[section][key][0]
            sections[section][key] = _coerce(value, kind, f"{source}: [{section}] {key}")
    d = sections["distill"]
    if not d["augment"] and "mix" not in raw.get("distill", {}):
        d["mix"] = 0.0  # the default mix is an augmentation: off with augment = false
    data = sections["data"]
    by_default = "synthetic_motion" not in raw.get("data", {})
    if sections["teacher"]["path"] and data["synthetic_motion_for"] == "teacher" and by_default:
        data["synthetic_motion"] = 0  # the default lends them to a teacher nobody trains
    _check_values(sections, source)
    return sections


def _check_strings(s: dict[str, dict[str, Any]], source: str) -> None:
    """Every string (paths included): printable (no NUL, newline or ESC, which no path or
    name needs and which would reach terminals and reports) and at most 4096 characters."""
    from ppgedge.textsafe import is_printable, printable

    for section, table in s.items():
        for key, value in table.items():
            items = value if isinstance(value, list) else [value]
            for item in items:
                if not isinstance(item, str):
                    continue
                if len(item) > STRING_MAX_CHARS:
                    raise PpgedgeError(
                        f"{source}: [{section}] {key} is {len(item):,} characters long (at most "
                        f"{STRING_MAX_CHARS})"
                    )
                if not is_printable(item):
                    raise PpgedgeError(
                        f"{source}: [{section}] {key} '{printable(item)[:80]}' holds control "
                        "characters (newline, tab, NUL, ESC...): remove them"
                    )


def _check_values(s: dict[str, dict[str, Any]], source: str) -> None:
    positive = [
        ("data", "subjects"), ("data", "minutes"), ("data", "rate_hz"), ("data", "window_s"),
        ("data", "hop_s"), ("teacher", "epochs"), ("teacher", "patience"), ("distill", "epochs"),
        ("distill", "patience"), ("prune", "steps"), ("prune", "round_to"), ("qat", "epochs"),
    ]  # fmt: skip
    for section, table in s.items():
        for key, value in table.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise PpgedgeError(f"{source}: [{section}] {key} must be a finite number")
    for section, key in positive:
        if s[section][key] <= 0:
            raise PpgedgeError(f"{source}: [{section}] {key} must be positive")
    if not 0 <= s["run"]["seed"] < 2**32:
        raise PpgedgeError(f"{source}: [run] seed must be between 0 and 2**32 - 1")
    if not 0 <= s["run"]["threads"] <= 1024:
        raise PpgedgeError(f"{source}: [run] threads must be 0 (one per core) to 1024")
    for section in ("teacher", "distill"):
        if not 0 <= s[section]["motion_aug_p"] <= 1:
            raise PpgedgeError(f"{source}: [{section}] motion_aug_p must be between 0 and 1")
    d = s["distill"]
    check_mix(d["mix"], f"{source}: [distill] mix")
    for knob, verb in TEACHER_LABELLED.items():
        if d[knob] and not d["augment"]:
            raise PpgedgeError(
                f"{source}: [distill] {knob} = {d[knob]:g} {verb} augmented windows, but "
                f"augment = false: set augment = true, or {knob} = 0"
            )
    if not 0 <= s["run"]["ema_decay"] < 1:
        raise PpgedgeError(f"{source}: [run] ema_decay must be 0 (off) or in (0, 1)")
    if s["run"]["reference_windows"] < 0:
        raise PpgedgeError(f"{source}: [run] reference_windows must be 0 (no scaling) or more")
    d = s["data"]
    if d["rate_hz"] * d["window_s"] < 8 or d["rate_hz"] * d["hop_s"] < 1 or d["rate_hz"] > 10_000:
        raise PpgedgeError(
            f"{source}: [data] rate_hz {d['rate_hz']:g}, window_s {d['window_s']:g} and hop_s "
            f"{d['hop_s']:g} must give at least 8 samples per window and 1 per hop, at most 10 kHz"
        )
    try:
        resolve_channels(d["channels"])
    except PpgedgeError as exc:
        raise PpgedgeError(f"{source}: [data] channels: {exc}") from None
    _check_strings(s, source)
    name = s["export"]["name"]
    if len(name) > EXPORT_NAME_MAX_CHARS or not re.fullmatch(
        r"[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?", name
    ):
        raise PpgedgeError(
            f"{source}: [export] name '{name[:80]}' must be a plain file stem of at most "
            f"{EXPORT_NAME_MAX_CHARS} characters (letters, digits, _ . -; no path)"
        )
    if not s["run"]["out"]:
        raise PpgedgeError(f"{source}: [run] out must name the run folder")
    for key in ("finetune_epochs", "final_epochs"):
        if s["prune"][key] < 0:
            raise PpgedgeError(f"{source}: [prune] {key} cannot be negative")
    for key, value in s["budget"].items():
        if value is not None and value <= 0:
            raise PpgedgeError(f"{source}: [budget] {key} must be positive (an impossible budget)")
    if s["data"]["source"] != "synthetic" and not s["data"]["path"]:
        raise PpgedgeError(f"{source}: [data] source '{s['data']['source']}' needs a path")
    if s["data"]["source"] == "synthetic" and s["data"]["subjects"] < 3:
        raise PpgedgeError(f"{source}: [data] subjects must be at least 3 (train, val, test)")
    for key in ("test_subjects", "val_subjects"):
        if not all(isinstance(x, str) for x in s["data"][key]):
            raise PpgedgeError(f"{source}: [data] {key} must be a list of subject names")
    n_extra = s["data"]["synthetic_motion"]
    try:
        check_extra_count(n_extra)
    except PpgedgeError as exc:
        raise PpgedgeError(f"{source}: {exc}") from None
    if n_extra and s["data"]["synthetic_motion_for"] == "teacher" and s["teacher"]["path"]:
        raise PpgedgeError(
            f'{source}: [data] synthetic_motion_for = "teacher" but [teacher] path gives a '
            "trained teacher, so no stage would train on the synthetic motion subjects: leave "
            'synthetic_motion out (or 0), lend them to every stage (synthetic_motion_for = "all"), '
            "or empty the teacher path"
        )
    lent = set(extra_subject_names(n_extra))
    for key in ("test_subjects", "val_subjects"):
        named = sorted(lent & set(s["data"][key]))
        if named:
            raise PpgedgeError(
                f"{source}: [data] {key} names {named}, synthetic motion subjects, which are "
                "for training only: name recorded subjects"
            )


def load_run_config(path: str | Path | None = None) -> RunConfig:
    """The built-in defaults (no path), or a ``ppgedge.toml`` validated over them."""
    if path is None:
        return RunConfig(defaults())
    path = Path(path)
    if not path.is_file():
        raise PpgedgeError(f"{path}: no such config file (write one with `ppgedge init`)")
    try:
        if path.stat().st_size > CONFIG_MAX_BYTES:
            raise PpgedgeError(f"{path}: over {CONFIG_MAX_BYTES >> 20} MB, not a ppgedge.toml")
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PpgedgeError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise PpgedgeError(f"{path}: arrays or tables nested too deeply to be a config") from None
    except OSError as exc:
        raise PpgedgeError(f"{path}: cannot read ({exc.strerror})") from None
    cfg = RunConfig(validate(raw, str(path)), path.resolve())
    check_references(cfg)
    return cfg


def check_references(cfg: RunConfig) -> None:
    """What the config points at, checked before the first stage: the data and teacher paths
    exist, the targets folder is a folder, and the target resolves (a known name or a readable
    profile) with the budget overrides applied; otherwise each is found only when its stage
    runs, after the ones before it have trained."""
    from ppgedge.profile.targets import resolve, with_overrides

    source = str(cfg.path or "config")
    d, t = cfg["data"], cfg["target"]
    if d["source"] != "synthetic" and not cfg.resolve_path(d["path"]).exists():
        raise PpgedgeError(f"{source}: [data] path {cfg.resolve_path(d['path'])} does not exist")
    if cfg["teacher"]["path"] and not cfg.resolve_path(cfg["teacher"]["path"]).exists():
        raise PpgedgeError(
            f"{source}: [teacher] path {cfg.resolve_path(cfg['teacher']['path'])} does not exist "
            "(leave it empty to train a teacher)"
        )
    extra = None
    if t["targets_dir"]:
        folder = cfg.resolve_path(t["targets_dir"])
        if not folder.is_dir():
            raise PpgedgeError(f"{source}: [target] targets_dir {folder} is not a folder")
        extra = [folder]
    if t["path"] and not cfg.resolve_path(t["path"]).is_file():
        raise PpgedgeError(
            f"{source}: [target] path {cfg.resolve_path(t['path'])} is not a target .toml file"
        )
    spec = str(cfg.resolve_path(t["path"])) if t["path"] else t["name"]
    try:
        with_overrides(resolve(spec, extra), cfg.budget_overrides(), "[budget]")
    except PpgedgeError as exc:
        raise PpgedgeError(f"{source}: [target] {exc}") from None


def with_values(cfg: RunConfig, **changes: dict[str, Any]) -> RunConfig:
    """A copy with some keys replaced (validated), e.g. ``with_values(cfg, run={"out": d})``."""
    raw = cfg.to_dict()
    for section, table in changes.items():
        raw.setdefault(section, {}).update(table)
    raw["budget"] = {k: v for k, v in raw["budget"].items() if v is not None}
    return RunConfig(validate(raw, str(cfg.path or "config")), cfg.path)


def write_template(path: str | Path, *, force: bool = False) -> Path:
    from ppgedge.atomic import write_text_atomic

    path = Path(path)
    if path.exists() and not force:
        raise PpgedgeError(f"{path} exists: choose another path or pass --force")
    write_text_atomic(path, TEMPLATE)
    return path
