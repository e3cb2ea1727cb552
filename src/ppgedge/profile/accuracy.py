"""Accuracy as a budget: the gate reads what ``ppgedge verify`` measured for *this* model.

A model that fits but outputs a constant must not pass. ``verify`` runs the int8 model in
TFLite Micro on held-out windows and records its MAE, the float model's MAE and the spectral
baseline's MAE on the same windows, with the ``.tflite``'s sha256. ``check`` finds that report
(``--verify FILE``, or beside the model in an export or run folder), refuses one made for
another model, and gates:

* ``mae_bpm``: the int8 MAE; default = the spectral baseline's MAE on the same windows (a
  model worse than a band-pass + FFT peak picker is not worth its flash);
* ``max_mae_increase_bpm``: int8 MAE minus the float model's; default 1.0 BPM.

With no report, accuracy is reported as not gated (a foreign ``.tflite``), unless the budget
sets one of these limits: then the missing evidence is an input error (exit 2), never a pass.
Light on purpose: JSON only, no training stack.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ppgedge.errors import PpgedgeError

VERIFY_FAMILY = "ppgedge.verify"
DEFAULT_MAX_MAE_INCREASE_BPM = 1.0
_MAX_REPORT_BYTES = 16 << 20


@dataclass(frozen=True)
class AccuracyEvidence:
    """What verify measured on held-out windows, for one model (by content hash)."""

    path: str
    windows: int
    part: str
    mae_int8: float
    mae_float: float | None
    mae_spectral: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def find_verify_report(model: Path, given: Path | None) -> Path | None:
    """``--verify FILE``; else ``verify.json`` beside the model (an export folder), or the run
    folder's ``verify/verify.json`` when the model sits in its ``export/``."""
    if given is not None:
        return given
    if not model.is_file():  # a model parsed from bytes has no folder to look in
        return None
    for candidate in (model.parent / "verify.json", model.parent.parent / "verify/verify.json"):
        if candidate.is_file():
            return candidate
    return None


def _number(doc: dict[str, Any], key: str, path: Path, required: bool) -> float | None:
    value = doc.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PpgedgeError(f"{path}: '{key}' is not a finite number: run `ppgedge verify` again")
    return float(value)


def load_evidence(path: Path, model_sha256: str) -> AccuracyEvidence:
    """The verify report at ``path``, checked to be about the model with ``model_sha256``."""
    try:
        if path.stat().st_size > _MAX_REPORT_BYTES:
            raise PpgedgeError(f"{path}: too large to be a verify report")
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PpgedgeError(f"--verify {path}: no such file") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise PpgedgeError(f"{path}: not a readable verify report ({exc})") from None
    schema = doc.get("schema") if isinstance(doc, dict) else None
    if not isinstance(schema, str) or schema.split("/")[0] != VERIFY_FAMILY:
        raise PpgedgeError(
            f"{path}: not a ppgedge verify report (schema {schema!r}); "
            "write one with `ppgedge verify EXPORT DATASET --json > verify.json`"
        )
    made_for = doc.get("tflite_sha256")
    if not made_for:
        raise PpgedgeError(
            f"{path}: verify report names no model hash (made by an older ppgedge): "
            "run `ppgedge verify` again"
        )
    if made_for != model_sha256:
        raise PpgedgeError(
            f"{path} was made for another model (sha256 {str(made_for)[:12]}..., this one "
            f"{model_sha256[:12]}...): run `ppgedge verify` on this model"
        )
    windows = doc.get("windows")
    if type(windows) is not int or windows < 1:
        raise PpgedgeError(f"{path}: 'windows' must be a positive count")
    return AccuracyEvidence(
        path=str(path),
        windows=windows,
        part=str(doc.get("part", "")),
        mae_int8=_number(doc, "mae_tflm", path, True),  # type: ignore[arg-type]
        mae_float=_number(doc, "mae_float", path, False),
        mae_spectral=_number(doc, "mae_spectral", path, False),
    )


def accuracy_limits(
    mae_bpm: float | None, max_increase: float | None, evidence: AccuracyEvidence | None
) -> list[tuple[str, float, float, str]]:
    """(name, limit, value, where the limit comes from) for each accuracy line to gate."""
    if evidence is None:
        if mae_bpm is not None or max_increase is not None:
            raise PpgedgeError(
                "the budget sets an accuracy limit but no verify report was found for this "
                "model: run `ppgedge verify EXPORT DATASET` (it writes verify.json in a run) "
                "or pass --verify FILE"
            )
        return []
    lines: list[tuple[str, float, float, str]] = []
    if mae_bpm is not None:
        lines.append(("mae", mae_bpm, evidence.mae_int8, "budget"))
    elif evidence.mae_spectral is not None:
        lines.append(("mae", evidence.mae_spectral, evidence.mae_int8, "spectral baseline"))
    if evidence.mae_float is not None:
        limit = DEFAULT_MAX_MAE_INCREASE_BPM if max_increase is None else max_increase
        where = "default" if max_increase is None else "budget"
        lines.append(("mae_increase", limit, evidence.mae_int8 - evidence.mae_float, where))
    elif max_increase is not None:
        raise PpgedgeError(
            f"{evidence.path}: no float-model MAE (a foreign .tflite), so "
            "max_mae_increase_bpm cannot be checked: remove it from the budget"
        )
    return lines
