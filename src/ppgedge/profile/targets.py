"""Cortex-M target profiles (TOML), their default model budgets, and project overrides.

Built-in profiles ship inside the package (``ppgedge/profile/targets_data/``, shown at the
repository root as ``targets/``). Users add their own: a TOML file given directly
(``--target my_board.toml``), or directories searched before the built-ins (``--targets-dir``,
or ``PPGEDGE_TARGETS`` with several directories separated by ``os.pathsep``). A project file
``ppgedge.toml`` names the target (``[target] name = ...`` or ``path = ...``) and overrides
budget fields (``[budget]``). Every number in a built-in profile carries its source in the
``[sources]`` table.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ppgedge.errors import PpgedgeError

ENV_DIRS = "PPGEDGE_TARGETS"
BUILTIN_DIR = Path(__file__).resolve().parent / "targets_data"
LATENCY_BOUNDS = ("low", "mid", "high")


@dataclass(frozen=True)
class Budget:
    """What the model may use on the part; latency/energy are checked at ``latency_bound``."""

    flash_kb: float
    sram_kb: float
    latency_ms: float
    energy_uj: float
    period_s: float = 2.0
    latency_bound: str = "high"
    rationale: str = ""
    # accuracy, gated from the verify report: None = the default (profile.accuracy)
    mae_bpm: float | None = None
    max_mae_increase_bpm: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Target:
    """One part: core, clock, memories, DSP/FPU, active current and supply, default budget."""

    name: str
    title: str
    core: str
    clock_mhz: float
    flash_kb: float
    sram_kb: float
    dsp: bool
    fpu: str
    active_ua_per_mhz: float
    supply_v: float
    budget: Budget
    sleep_ua: float | None = None
    mve: bool = False
    vendor: str = ""
    notes: str = ""
    sources: dict[str, str] = field(default_factory=dict)
    path: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["budget"] = self.budget.to_dict()
        return d


_REQUIRED_NUMBERS = ("clock_mhz", "flash_kb", "sram_kb", "active_ua_per_mhz", "supply_v")
_TARGET_KEYS = {f.name for f in fields(Target)} - {"budget", "path"}
_BUDGET_KEYS = {f.name for f in fields(Budget)}
_BUDGET_NUMBERS = ("flash_kb", "sram_kb", "latency_ms", "energy_uj", "period_s")
_ACCURACY_NUMBERS = ("mae_bpm", "max_mae_increase_bpm")  # optional: defaults need the data


def _positive(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PpgedgeError(f"{where}: '{key}' must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise PpgedgeError(f"{where}: '{key}' must be a positive number, got {value!r}")
    return float(value)


def make_budget(raw: dict[str, Any], where: str, base: Budget | None = None) -> Budget:
    """A Budget from a TOML table; fields missing from ``raw`` come from ``base``."""
    unknown = set(raw) - _BUDGET_KEYS
    if unknown:
        raise PpgedgeError(
            f"{where}: unknown budget field(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(_BUDGET_KEYS))}"
        )
    values: dict[str, Any] = asdict(base) if base else {}
    for key in _BUDGET_NUMBERS:
        if key in raw:
            values[key] = _positive(raw[key], key, where)
        elif key not in values and key != "period_s":
            raise PpgedgeError(f"{where}: budget needs '{key}'")
    for key in _ACCURACY_NUMBERS:
        if key in raw:
            values[key] = _positive(raw[key], key, where)
    bound = raw.get("latency_bound", values.get("latency_bound", "high"))
    if bound not in LATENCY_BOUNDS:
        raise PpgedgeError(f"{where}: latency_bound must be one of {', '.join(LATENCY_BOUNDS)}")
    values["latency_bound"] = bound
    values["rationale"] = str(raw.get("rationale", values.get("rationale", "")))
    return Budget(**values)


def parse_target(raw: dict[str, Any], where: str, default_name: str) -> Target:
    """Validate one target table (already parsed TOML)."""
    unknown = set(raw) - _TARGET_KEYS - {"budget"}
    if unknown:
        raise PpgedgeError(
            f"{where}: unknown field(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(_TARGET_KEYS | {'budget'}))}"
        )
    for key in ("core", *_REQUIRED_NUMBERS):
        if key not in raw:
            raise PpgedgeError(f"{where}: missing '{key}'")
    if not isinstance(raw.get("budget"), dict):
        raise PpgedgeError(f"{where}: missing the [budget] table")
    numbers = {key: _positive(raw[key], key, where) for key in _REQUIRED_NUMBERS}
    sleep = raw.get("sleep_ua")
    if sleep is not None and sleep != 0:
        sleep = _positive(sleep, "sleep_ua", where)
    sources = raw.get("sources", {})
    if not isinstance(sources, dict):
        raise PpgedgeError(f"{where}: [sources] must be a table of strings")
    return Target(
        name=str(raw.get("name", default_name)).lower(),
        title=str(raw.get("title", raw.get("name", default_name))),
        core=str(raw["core"]).lower(),
        dsp=bool(raw.get("dsp", True)),
        mve=bool(raw.get("mve", False)),
        fpu=str(raw.get("fpu", "")),
        sleep_ua=sleep,
        vendor=str(raw.get("vendor", "")),
        notes=str(raw.get("notes", "")),
        sources={str(k): str(v) for k, v in sources.items()},
        budget=make_budget(raw["budget"], f"{where} [budget]"),
        path=where,
        **numbers,
    )


TOML_MAX_BYTES = 1 << 20  # a target profile or project config is a few KB


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        if path.is_file() and path.stat().st_size > TOML_MAX_BYTES:
            raise PpgedgeError(f"{path}: over {TOML_MAX_BYTES >> 20} MB, not a ppgedge TOML file")
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise PpgedgeError(f"{path}: arrays or tables nested too deeply to be a config") from None
    except FileNotFoundError:
        raise PpgedgeError(f"{path}: no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PpgedgeError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise PpgedgeError(f"{path}: cannot read ({exc.strerror})") from None


def load_target_file(path: str | os.PathLike[str]) -> Target:
    path = Path(path)
    return parse_target(_read_toml(path), str(path), path.stem)


def search_dirs(extra: list[str | os.PathLike[str]] | None = None) -> list[Path]:
    """User directories (given, then ``PPGEDGE_TARGETS``) before the built-in profiles."""
    dirs = [Path(d) for d in (extra or [])]
    env = os.environ.get(ENV_DIRS, "")
    dirs += [Path(d) for d in env.split(os.pathsep) if d.strip()]
    for d in dirs:
        if not d.is_dir():
            raise PpgedgeError(f"targets directory {d} does not exist")
    return [*dirs, BUILTIN_DIR]


def available(extra: list[str | os.PathLike[str]] | None = None) -> dict[str, Target]:
    """Every target by name; a user profile shadows a built-in one of the same name."""
    found: dict[str, Target] = {}
    for d in search_dirs(extra):
        for path in sorted(d.glob("*.toml")):
            target = load_target_file(path)
            found.setdefault(target.name, target)
    return found


def resolve(spec: str, extra: list[str | os.PathLike[str]] | None = None) -> Target:
    """A target by name, or a path to a TOML profile."""
    path = Path(spec)
    if spec.endswith(".toml") or path.is_file():
        return load_target_file(path)
    targets = available(extra)
    key = spec.lower().replace("_", "-")
    for name, target in targets.items():
        if name.replace("_", "-") == key:
            return target
    raise PpgedgeError(
        f"unknown target '{spec}'; known targets: {', '.join(sorted(targets))} "
        "(or give a path to your own .toml profile)"
    )


RUN_SECTIONS = frozenset({"run", "data", "teacher", "distill", "prune", "qat", "export"})


@dataclass(frozen=True)
class ProjectConfig:
    """What ``ppgedge.toml`` says: a target (name or path), search dirs, budget overrides."""

    path: Path
    target: str | None
    targets_dirs: tuple[Path, ...]
    budget: dict[str, Any]


DEFAULT_TARGET = "nrf52840"  # the target of a config that names none, for every command
PROJECT_FILE = "ppgedge.toml"


def config_in_effect(given: str | os.PathLike[str] | None) -> Path | None:
    """How every command finds its config: ``--config FILE``, else ``./ppgedge.toml``, else
    None (the built-in defaults). ``run``, ``profile`` and ``check`` agree on it."""
    if given is not None:
        return Path(given)
    here = Path(PROJECT_FILE)
    return here if here.is_file() else None


def target_in_effect(
    target: str | None,
    config: str | os.PathLike[str] | None,
    targets_dirs: list[Path] | None = None,
) -> tuple[Target, str]:
    """The target with the config's budget overrides, and one line saying where it came from.

    The config is :func:`config_in_effect`'s; ``--target`` replaces its ``[target]`` only, the
    ``[budget]`` overrides still apply (a command-line option changes one field, never drops the
    rest of the config)."""
    path = config_in_effect(config)
    dirs: list[Path] = list(targets_dirs or [])
    overrides: dict[str, Any] = {}
    where = "budget"
    from_config = DEFAULT_TARGET
    if path is not None:
        cfg = load_config(path)
        dirs = [*cfg.targets_dirs, *dirs]
        from_config = cfg.target or DEFAULT_TARGET
        overrides, where = cfg.budget, f"{path} [budget]"
    chosen = target or from_config
    resolved = with_overrides(resolve(chosen, dirs), overrides, where)
    line = f"config: {path}" if path else f"config: built-in (no --config, no ./{PROJECT_FILE})"
    line += f"; target {resolved.name}"
    if target is not None and path is not None:
        line += f" (--target; replaces the config's {from_config})"
    if overrides:
        line += f"; [budget] overrides: {', '.join(sorted(overrides))}"
    return resolved, line


def load_config(path: str | os.PathLike[str]) -> ProjectConfig:
    path = Path(path)
    raw = _read_toml(path)
    # the same file configures `ppgedge run`; its other sections are that command's to check
    unknown = set(raw) - {"target", "budget"} - RUN_SECTIONS
    if unknown:
        raise PpgedgeError(
            f"{path}: unknown section(s) {', '.join(sorted(unknown))}; known: [target], [budget]"
            f" and the `ppgedge run` sections {', '.join(f'[{s}]' for s in sorted(RUN_SECTIONS))}"
        )
    target_tab = raw.get("target", {})
    budget_tab = raw.get("budget", {})
    if not isinstance(target_tab, dict) or not isinstance(budget_tab, dict):
        raise PpgedgeError(f"{path}: [target] and [budget] must be tables")
    bad = set(target_tab) - {"name", "path", "targets_dir"}
    if bad:
        raise PpgedgeError(f"{path}: unknown [target] field(s) {', '.join(sorted(bad))}")
    spec = target_tab.get("path") or None
    name = target_tab.get("name") or DEFAULT_TARGET  # as `ppgedge run` reads the same file
    spec = str((path.parent / str(spec)).resolve()) if spec is not None else name
    dirs = target_tab.get("targets_dir", [])
    dirs = [d for d in ([dirs] if isinstance(dirs, str) else list(dirs)) if str(d)]
    make_budget({k: v for k, v in budget_tab.items()}, f"{path} [budget]", _ANY_BUDGET)
    return ProjectConfig(
        path=path,
        target=str(spec) if spec is not None else None,
        targets_dirs=tuple((path.parent / str(d)).resolve() for d in dirs),
        budget=dict(budget_tab),
    )


# A complete budget used only to validate partial override tables.
_ANY_BUDGET = Budget(flash_kb=1, sram_kb=1, latency_ms=1, energy_uj=1)


def with_overrides(target: Target, overrides: dict[str, Any], where: str) -> Target:
    """The target with its budget fields replaced by ``overrides`` (validated)."""
    if not overrides:
        return target
    return replace(target, budget=make_budget(overrides, where, target.budget))
