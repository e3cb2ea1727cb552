"""Distillation methods, by name: what ``--method`` on the command line picks from."""

from __future__ import annotations

import inspect
from typing import Any

from ppgedge.distill.methods.base import Distiller
from ppgedge.distill.methods.dkd import DKDDistiller
from ppgedge.distill.methods.feature import FeatureDistiller, default_pairs
from ppgedge.distill.methods.hard import HardDistiller
from ppgedge.distill.methods.soft import SoftDistiller
from ppgedge.errors import PpgedgeError

DISTILLERS: dict[str, type[Distiller]] = {
    "hard": HardDistiller,
    "soft": SoftDistiller,
    "dkd": DKDDistiller,
    "feature": FeatureDistiller,
}

__all__ = [
    "DISTILLERS",
    "DKDDistiller",
    "Distiller",
    "FeatureDistiller",
    "HardDistiller",
    "SoftDistiller",
    "create_distiller",
    "default_pairs",
]


def create_distiller(name: str, **kwargs: Any) -> Distiller:
    """Build a distiller; an unknown name or a bad argument is a user error, not a traceback."""
    cls = DISTILLERS.get(name)
    if cls is None:
        raise PpgedgeError(
            f"unknown distillation method '{name}' (known: {', '.join(sorted(DISTILLERS))})"
        )
    signature = inspect.signature(cls)
    try:
        signature.bind(**kwargs)
    except TypeError as e:
        params = ", ".join(signature.parameters)
        raise PpgedgeError(f"bad arguments for method '{name}': {e} (it takes: {params})") from None
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise PpgedgeError(f"bad arguments for method '{name}': {e}") from None
