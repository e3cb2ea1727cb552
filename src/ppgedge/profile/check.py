"""Budget gate for CI: limits vs profile, baseline regressions, JUnit / Markdown / annotations.

Exit codes (set by the CLI from :attr:`CheckResult.passed`): 0 every budget holds and nothing
regressed, 1 a budget is exceeded or a regression beyond ``--max-regression``; input problems
raise :class:`PpgedgeError` (exit 2). Latency and energy are estimates: they are checked at the
budget's ``latency_bound`` end of their band (``high`` by default, so a pass is conservative).
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ppgedge.errors import PpgedgeError
from ppgedge.profile.accuracy import (
    AccuracyEvidence,
    accuracy_limits,
    find_verify_report,
    load_evidence,
)
from ppgedge.profile.report import Report
from ppgedge.profile.targets import Budget
from ppgedge.textsafe import markdown_text, printable

SCHEMA = "ppgedge.check/1"
DEFAULT_MAX_REGRESSION = 5.0


@dataclass(frozen=True)
class BudgetResult:
    """One budget line: limit, value, headroom. ``band`` is set for estimates."""

    name: str
    unit: str
    limit: float
    value: float
    ok: bool
    margin: float
    margin_pct: float
    estimate: bool
    band: tuple[float, float] | None = None
    bound: str | None = None
    basis: str | None = None  # where an accuracy limit comes from (budget, spectral baseline)


@dataclass(frozen=True)
class Delta:
    """One metric against the baseline; ``regressed`` when worse by more than allowed."""

    name: str
    unit: str
    baseline: float
    value: float
    delta: float
    delta_pct: float | None
    regressed: bool


@dataclass(frozen=True)
class CheckResult:
    report: Report
    budget: Budget
    results: list[BudgetResult]
    deltas: list[Delta]
    baseline_path: str | None
    max_regression_pct: float
    accuracy: AccuracyEvidence | None = None

    @property
    def budgets_ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def regressed(self) -> bool:
        return any(d.regressed for d in self.deltas)

    @property
    def passed(self) -> bool:
        return self.budgets_ok and not self.regressed

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def to_dict(self) -> dict[str, Any]:
        t = self.report.target
        return {
            "schema": SCHEMA,
            "passed": self.passed,
            "exit_code": self.exit_code,
            "model": self.report.model,
            "target": {"name": t.name, "title": t.title, "core": t.core, "clock_mhz": t.clock_mhz},
            "budget": self.budget.to_dict(),
            "results": [
                {**asdict(r), "band": list(r.band) if r.band else None} for r in self.results
            ],
            "baseline": None
            if self.baseline_path is None
            else {
                "path": self.baseline_path,
                "max_regression_pct": self.max_regression_pct,
                "regressed": self.regressed,
                "deltas": [asdict(d) for d in self.deltas],
            },
            "accuracy": {"gated": False, "why": "no verify report for this model"}
            if self.accuracy is None
            else {"gated": True, **self.accuracy.to_dict()},
            "note": "latency and energy are ESTIMATES; checked at the "
            f"'{self.budget.latency_bound}' end of their band",
            "profile": self.report.to_dict(),
        }


def _result(
    name: str,
    unit: str,
    limit: float,
    value: float,
    band: tuple[float, float] | None = None,
    bound: str | None = None,
    basis: str | None = None,
) -> BudgetResult:
    margin = limit - value
    return BudgetResult(
        name=name,
        unit=unit,
        limit=round(limit, 4),
        value=round(value, 4),
        ok=value <= limit,
        margin=round(margin, 4),
        margin_pct=round(100 * margin / limit, 2),
        estimate=band is not None,
        band=(round(band[0], 4), round(band[1], 4)) if band else None,
        bound=bound,
        basis=basis,
    )


def evaluate(
    report: Report, budget: Budget, accuracy: AccuracyEvidence | None = None
) -> list[BudgetResult]:
    """Flash, SRAM (KB), latency (ms), energy (µJ) and, with a verify report, MAE (BPM)
    against the budget."""
    bound = budget.latency_bound
    ms = report.latency["ms"]
    uj = report.energy["uj"]
    lines = accuracy_limits(budget.mae_bpm, budget.max_mae_increase_bpm, accuracy)
    return [
        _result("flash", "KB", budget.flash_kb, report.flash["total_bytes"] / 1024),
        _result("sram", "KB", budget.sram_kb, report.sram["total_bytes"] / 1024),
        _result("latency", "ms", budget.latency_ms, ms[bound], (ms["low"], ms["high"]), bound),
        _result("energy", "uJ", budget.energy_uj, uj[bound], (uj["low"], uj["high"]), bound),
        *(_result(name, "BPM", lim, val, basis=basis) for name, lim, val, basis in lines),
    ]


def load_baseline(path: str | Path) -> dict[str, Any]:
    """A previous ``ppgedge check --json`` document (schema checked)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise PpgedgeError(f"{path}: no such baseline file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PpgedgeError(f"{path}: not a JSON baseline ({exc})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        schema = doc.get("schema") if isinstance(doc, dict) else None
        raise PpgedgeError(
            f"{path}: not a ppgedge check report (schema {schema!r}, want {SCHEMA!r}); "
            "write one with `ppgedge check MODEL --json > baseline.json`"
        )
    results = doc.get("results")
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise PpgedgeError(f"{path}: baseline has no 'results' list")
    return doc


def compare(
    results: list[BudgetResult],
    baseline: dict[str, Any],
    target: str,
    max_regression_pct: float,
    latency_bound: str | None = None,
) -> list[Delta]:
    """Each metric vs the baseline's; worse by more than ``max_regression_pct`` % regresses."""
    if not math.isfinite(max_regression_pct) or max_regression_pct < 0:
        raise PpgedgeError("--max-regression must be a percentage >= 0")
    base_target = (baseline.get("target") or {}).get("name")
    if base_target and base_target != target:
        raise PpgedgeError(
            f"baseline was made for target '{base_target}', this check is for '{target}'; "
            "compare against a baseline made for the same target"
        )
    base_bound = (baseline.get("budget") or {}).get("latency_bound")
    if base_bound and latency_bound and base_bound != latency_bound:
        raise PpgedgeError(
            f"baseline checked estimates at the '{base_bound}' end of their band, this check at "
            f"'{latency_bound}': the same model would show a change; make the baseline with "
            "the same latency_bound"
        )
    old = {r.get("name"): r for r in baseline["results"]}
    deltas = []
    for r in results:
        b = old.get(r.name)
        if b is None or not isinstance(b.get("value"), int | float):
            continue
        before = float(b["value"])
        delta = r.value - before
        pct = 100 * delta / before if before > 0 else None
        worse = delta > 0 and (pct is None or pct > max_regression_pct)
        deltas.append(Delta(r.name, r.unit, before, r.value, round(delta, 4), _r(pct), bool(worse)))
    return deltas


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def run_check(
    report: Report,
    budget: Budget,
    baseline_path: str | Path | None = None,
    max_regression_pct: float = DEFAULT_MAX_REGRESSION,
    verify_path: str | Path | None = None,
) -> CheckResult:
    """Gate ``report`` on ``budget``; accuracy from ``verify_path`` or the verify report found
    beside the model (see :mod:`ppgedge.profile.accuracy`)."""
    found = find_verify_report(
        Path(report.model["path"]), None if verify_path is None else Path(verify_path)
    )
    accuracy = load_evidence(found, report.model["sha256"]) if found is not None else None
    results = evaluate(report, budget, accuracy)
    deltas: list[Delta] = []
    if baseline_path is not None:
        deltas = compare(
            results,
            load_baseline(baseline_path),
            report.target.name,
            max_regression_pct,
            budget.latency_bound,
        )
    return CheckResult(
        report,
        budget,
        results,
        deltas,
        None if baseline_path is None else str(baseline_path),
        max_regression_pct,
        accuracy,
    )


# ------------------------------------------------------------------------------ presenters
def _fmt(x: float) -> str:
    return f"{x:,.1f}" if abs(x) >= 10 else f"{x:,.3g}"


def describe(r: BudgetResult) -> str:
    """One sentence for a budget line (used in JUnit, annotations and Markdown)."""
    est = f" (ESTIMATE, {r.bound} end of {_fmt(r.band[0])}-{_fmt(r.band[1])})" if r.band else ""
    verb = "within" if r.ok else "EXCEEDS"
    limit = f"the {r.basis} limit" if r.basis and r.basis != "budget" else "the budget"
    return (
        f"{r.name} {_fmt(r.value)} {r.unit}{est} {verb} {limit} {_fmt(r.limit)} {r.unit} "
        f"(margin {_fmt(r.margin)} {r.unit}, {r.margin_pct:+.1f}%)"
    )


def change_text(d: Delta) -> str:
    """'unchanged', '+3.2%', or the absolute change when the baseline was zero."""
    if d.delta == 0:
        return "unchanged"
    if d.delta_pct is None:
        return f"{d.delta:+,.3g} {d.unit}"
    return f"{d.delta_pct:+.1f}%" if round(d.delta_pct, 1) != 0 else f"{d.delta_pct:+.2g}%"


def describe_delta(d: Delta) -> str:
    pct = change_text(d)
    verb = "REGRESSED" if d.regressed else "changed"
    return (
        f"{d.name} {verb}: {_fmt(d.baseline)} -> {_fmt(d.value)} {d.unit} "
        f"({d.delta:+,.3g} {d.unit}, {pct})"
    )


def to_junit(check: CheckResult) -> str:
    """JUnit XML: one testcase per budget (and per baseline metric), failures for breaches."""
    t = check.report.target
    cases: list[tuple[str, str | None, str]] = []
    for r in check.results:
        cases.append((r.name, None if r.ok else describe(r), describe(r)))
    for d in check.deltas:
        cases.append(
            (f"regression.{d.name}", describe_delta(d) if d.regressed else None, describe_delta(d))
        )
    failures = sum(1 for _, f, _ in cases if f)
    tname = printable(t.name)  # XML 1.0 cannot hold control characters at all
    suites = ET.Element(
        "testsuites",
        name="ppgedge check",
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
    )
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"ppgedge.check.{tname}",
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{check.report.seconds:.3f}",
    )
    props = ET.SubElement(suite, "properties")
    for key, value in (
        ("model", workspace_path(check.report.model["path"])),
        ("sha256", check.report.model["sha256"]),
        ("target", t.name),
        ("latency_bound", check.budget.latency_bound),
    ):
        ET.SubElement(props, "property", name=key, value=printable(value))
    for name, failure, text in cases:
        case = ET.SubElement(
            suite, "testcase", classname=f"ppgedge.check.{tname}", name=name, time="0"
        )
        if failure:
            ET.SubElement(case, "failure", message=failure, type="BudgetExceeded").text = text
        else:
            ET.SubElement(case, "system-out").text = text
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def to_markdown(check: CheckResult) -> str:
    """A PR comment: verdict, budget table, baseline deltas, the estimate caveat."""
    t = check.report.target
    verdict = "passed" if check.passed else "FAILED"
    icon = "✅" if check.passed else "❌"
    lines = [
        f"### {icon} ppgedge check {verdict}: {markdown_text(check.report.model['file'])} on "
        f"{markdown_text(t.title)}",
        "",
        "| budget | limit | value | margin | status |",
        "| --- | ---: | ---: | ---: | :---: |",
    ]
    for r in check.results:
        value = f"{_fmt(r.value)} {r.unit}"
        if r.band:
            value += f" (est. {_fmt(r.band[0])}-{_fmt(r.band[1])})"
        lines.append(
            f"| {r.name} | {_fmt(r.limit)} {r.unit} | {value} | {_fmt(r.margin)} {r.unit} "
            f"({r.margin_pct:+.1f}%) | {'✅' if r.ok else '❌'} |"
        )
    if check.baseline_path is not None:
        lines += [
            "",
            f"Against baseline {markdown_text(Path(check.baseline_path).name)} "
            f"(fail above +{check.max_regression_pct:g}%):",
            "",
            "| metric | baseline | now | change | status |",
            "| --- | ---: | ---: | ---: | :---: |",
        ]
        for d in check.deltas:
            pct = change_text(d)
            lines.append(
                f"| {d.name} | {_fmt(d.baseline)} {d.unit} | {_fmt(d.value)} {d.unit} | "
                f"{pct} | {'❌' if d.regressed else '✅'} |"
            )
    lines += [
        "",
        f"Latency and energy are **estimates** (cycle model calibrated on published MLPerf Tiny "
        f"results), checked at the {check.budget.latency_bound} end of their band; "
        f"{markdown_text(t.core)} at {t.clock_mhz:g} MHz, one inference every "
        f"{check.budget.period_s:g} s.",
        "",
    ]
    return "\n".join(lines)


def _escape_data(s: str) -> str:
    """A workflow-command value: ``%``, CR and LF percent-encoded (GitHub's rule), then every
    other control character made visible, so a file name cannot end the command or colour the
    log."""
    s = s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return printable(s)


def _escape_prop(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def workspace_path(path: str) -> str:
    """A path as GitHub matches annotations to files: relative to the working directory (the
    checkout) when inside it; an absolute path attaches to nothing."""
    p = Path(path)
    try:
        return p.absolute().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def github_annotations(check: CheckResult) -> list[str]:
    """GitHub Actions workflow commands: an ``::error`` per breach or regression."""
    model = _escape_prop(workspace_path(check.report.model["path"]))
    out = []
    for r in check.results:
        if not r.ok:
            title = _escape_prop(f"ppgedge budget: {r.name}")
            out.append(f"::error file={model},title={title}::{_escape_data(describe(r))}")
    for d in check.deltas:
        if d.regressed:
            title = _escape_prop(f"ppgedge regression: {d.name}")
            out.append(f"::error file={model},title={title}::{_escape_data(describe_delta(d))}")
    if not out:
        title = _escape_prop("ppgedge check")
        out.append(
            f"::notice title={title}::"
            + _escape_data(f"all budgets hold on {check.report.target.name}")
        )
    return out
