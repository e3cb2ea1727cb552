"""Cross-validated sweep statistics: error bars over folds and seeds, and a weighted law fit.

A cell's spread has two sources: which subjects are held out (folds) and the training seed.
:func:`aggregate_cv` reports both next to the overall mean and standard deviation over every
(fold, seed) run. :func:`fit_all_cv` fits the scaling laws of :mod:`ppgedge.distill.scaling` to
the per-size means weighted by their standard errors (``curve_fit`` with ``sigma``), so sizes
measured precisely count more and each fitted parameter gets a standard error; with a single
run per size there is no error bar and the plain per-run fit is used.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ppgedge.distill.scaling import FORMS, defined, fit_scaling_law

SIGMA_FLOOR = 0.01  # BPM: identical runs must not get an infinite weight


def _std(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def aggregate_cv(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (method, student): mean and std of test MAE over all runs, the std of the per-fold
    means (``fold_std``) and the mean within-fold std over seeds (``seed_std``)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["student"]), []).append(r)
    out = []
    for (method, student), rs in sorted(groups.items()):
        maes = [float(r["test_mae"]) for r in rs]
        by_fold: dict[Any, list[float]] = {}
        for r in rs:
            by_fold.setdefault(r.get("fold"), []).append(float(r["test_mae"]))
        fold_means = [float(np.mean(v)) for v in by_fold.values()]
        seed_stds = [_std(v) for v in by_fold.values() if len(v) > 1]
        out.append(
            {
                "method": method,
                "student": student,
                "family": rs[0]["family"],
                "parameters": rs[0]["parameters"],
                "runs": len(rs),
                "folds": len(by_fold),
                "seeds": len({r["seed"] for r in rs}),
                "mae_mean": float(np.mean(maes)),
                "mae_std": _std(maes),
                "fold_std": _std(fold_means),
                "seed_std": float(np.mean(seed_stds)) if seed_stds else 0.0,
            }
        )
    return out


def fit_weighted(
    params: list[float], mae: list[float], sigma: list[float], form: str
) -> dict[str, Any]:
    """One law form fitted to means with standard errors ``sigma`` (floored: a mean over
    identical runs has no spread but is not exact)."""
    return fit_scaling_law(
        params, mae, form, sigma=np.maximum(np.asarray(sigma, float), SIGMA_FLOOR)
    )


def fit_all_cv(
    rows: list[dict[str, Any]], summary: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Both law forms per (method, family): weighted on per-size means when every size has more
    than one run (fold or seed), else the plain fit on every run."""
    laws: dict[str, dict[str, Any]] = {}
    for method, family in sorted({(s["method"], s["family"]) for s in summary}):
        pts = [s for s in summary if s["method"] == method and s["family"] == family]
        weighted = all(p["runs"] > 1 for p in pts)
        raw = [r for r in rows if r["method"] == method and r["family"] == family]
        for form in FORMS:
            if weighted:
                law = fit_weighted(
                    [p["parameters"] for p in pts],
                    [p["mae_mean"] for p in pts],
                    [p["mae_std"] / math.sqrt(p["runs"]) for p in pts],
                    form,
                )
            else:
                law = fit_scaling_law(
                    [r["parameters"] for r in raw], [r["test_mae"] for r in raw], form
                )
            laws[f"{method} ({family}) {form}"] = law
    return defined(laws)


def cv_markdown(
    summary: list[dict[str, Any]],
    laws: dict[str, dict[str, Any]],
    failed: list[dict[str, Any]],
    not_run: list[str],
) -> str:
    """What the plain table cannot show: the fold/seed split of each error bar, the fitted
    parameters' standard errors, and every cell that failed or did not run."""
    lines: list[str] = []
    if any(s["folds"] > 1 for s in summary):
        lines += [
            "",
            "| student | method | runs | folds | seeds | MAE | std | fold std | seed std |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for s in sorted(summary, key=lambda s: (s["parameters"], s["student"], s["method"])):
            lines.append(
                f"| {s['student']} | {s['method']} | {s['runs']} | {s['folds']} | "
                f"{s['seeds']} | {s['mae_mean']:.2f} | {s['mae_std']:.2f} | "
                f"{s['fold_std']:.2f} | {s['seed_std']:.2f} |"
            )
    weighted = {k: v for k, v in laws.items() if v.get("ok") and v.get("weighted")}
    if weighted:
        lines += [
            "",
            "Laws fitted to per-size means weighted by their standard errors:",
            "",
            "| method (family) | a ± se | b ± se | c ± se | reduced χ² |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for key, law in sorted(weighted.items()):
            lines.append(
                f"| {key} | {law['a']:.3g} ± {law['a_se']:.2g} | {law['b']:.3g} ± "
                f"{law['b_se']:.2g} | {law['c']:.3g} ± {law['c_se']:.2g} | "
                f"{law['reduced_chi2']:.2f} |"
            )
    if failed:
        lines += ["", f"**{len(failed)} cell(s) failed** (rerun the sweep to retry them):", ""]
        lines += [f"- `{f['key']}` after {f['attempts']} attempt(s): {f['error']}" for f in failed]
    if not_run:
        lines += ["", f"**{len(not_run)} cell(s) not run** (interrupted; rerun to finish):", ""]
        lines += [f"- `{k}`" for k in not_run]
    return "\n".join(lines) + ("\n" if lines else "")
