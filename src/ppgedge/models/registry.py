"""Model registry: every architecture is registered by name and built by :func:`create_model`.

As in timm, a name maps to a constructor with keyword knobs; presets (``resnet_teacher``,
``resnet_tiny``...) are just registered constructors with other defaults, so a checkpoint only
needs ``(name, kwargs)`` to rebuild its network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ppgedge.data.format import MAX_RATE_HZ
from ppgedge.errors import PpgedgeError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    family: str
    description: str
    format_knobs: tuple[str, ...] = ()  # knobs set from the data format (see format_kwargs)
    first_channel: str = ""  # the input channel the model reads first, by name ("" = any)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    family: str,
    description: str,
    format_knobs: tuple[str, ...] = (),
    first_channel: str = "",
) -> Callable:
    """Decorator: register ``builder(**kwargs) -> nn.Module`` under ``name``.

    ``format_knobs`` names the knobs (``window_samples``, ``sample_rate_hz``) the model takes
    from the data it is trained on rather than from the user; ``first_channel`` the channel a
    model reads by position (a spectral head reads the PPG from channel 0)."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model '{name}' registered twice")
        _REGISTRY[name] = ModelEntry(
            name, builder, family, description, tuple(format_knobs), first_channel
        )
        return builder

    return wrap


def format_kwargs(
    name: str,
    window_samples: int,
    sample_rate_hz: float,
    channels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The knobs ``name`` takes from the data format, e.g. an MLP's input length; with the
    ``channels`` it will be trained on, refuse a model that would read the wrong one."""
    entry = _REGISTRY.get(name)
    if entry is None:
        return {}
    if channels is not None:
        check_channels(name, channels)
    known = {"window_samples": window_samples, "sample_rate_hz": float(sample_rate_hz)}
    return {k: known[k] for k in entry.format_knobs}


def check_channels(name: str, channels: Sequence[str]) -> None:
    """Refuse input channels a registered model would misread (it reads one by position)."""
    entry = _REGISTRY.get(name)
    first = entry.first_channel if entry else ""
    if first and (not channels or channels[0] != first):
        raise PpgedgeError(
            f"model '{name}' reads '{first}' from the first input channel, but the channels "
            f"are {list(channels)}: list '{first}' first (e.g. channels = \"all\") or choose "
            "another model"
        )


def list_models(*, include_composite: bool = False) -> list[ModelEntry]:
    """The zoo: every buildable-from-defaults architecture (composites such as ensembles, which
    need their members' arguments, only when asked)."""
    return [
        _REGISTRY[k]
        for k in sorted(_REGISTRY)
        if include_composite or _REGISTRY[k].family != "ensemble"
    ]


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model; unknown names and bad knobs are user errors."""
    entry = _REGISTRY.get(name)
    if entry is None:
        raise PpgedgeError(
            f"unknown model '{name}': run 'ppgedge models' to list them "
            f"({', '.join(sorted(_REGISTRY))})"
        )
    try:
        model = entry.builder(**kwargs)
    except TypeError as exc:
        raise PpgedgeError(f"model '{name}': bad arguments {kwargs} ({exc})") from None
    model.ppgedge_arch = (name, dict(kwargs))  # type: ignore[attr-defined]
    return model


# What a checkpoint from elsewhere may ask the zoo to build. Every registered architecture's knobs,
# with ranges that hold the whole zoo and its scaled, pruned and ensembled variants (the largest
# preset, resnet_teacher, is width 24, depth 2, 4 stages, kernel 7, 1.3 M parameters) but keep a
# model that a 23 KB file describes from allocating gigabytes.
KNOB_RANGES: dict[str, tuple[int, int]] = {
    "in_channels": (1, 64),
    "width": (1, 1024),
    "depth": (1, 16),
    "stages": (1, 8),
    "blocks": (1, 32),
    "kernel": (1, 129),
    "stem_kernel": (1, 129),
    "max_width": (1, 4096),
    "num_classes": (1, 4096),
    "window_samples": (8, 1 << 16),
    "pool": (1, 1 << 16),
    "head_width": (1, 256),
    "head_depth": (1, 8),
}
MAX_HIDDEN_LAYERS, MAX_HIDDEN = 8, 8192
MAX_ENSEMBLE_MEMBERS = 16
MAX_PARAMETERS = 50_000_000  # 200 MB of float32 weights; the zoo's teacher has 1.3 M


def _knob(name: str, value: Any, where: str) -> None:
    lo, hi = KNOB_RANGES[name]
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise PpgedgeError(
            f"{where}: '{name}' is {str(value)[:40]}, expected an integer from {lo} to {hi}"
        )


def check_arch_kwargs(name: str, kwargs: Any, where: str = "model") -> None:
    """Refuse an architecture name or arguments outside the zoo's ranges, before anything is
    built: a checkpoint's ``arch_kwargs`` come from the file and size the allocation."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise PpgedgeError(
            f"{where}: unknown model '{str(name)[:60]}': run 'ppgedge models' to list them"
        )
    if not isinstance(kwargs, dict):
        raise PpgedgeError(f"{where}: model arguments are a {type(kwargs).__name__}, not a dict")
    for key, value in kwargs.items():
        if key in KNOB_RANGES:
            _knob(key, value, where)
        elif key == "sample_rate_hz":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise PpgedgeError(f"{where}: 'sample_rate_hz' is not a number")
            if not 1.0 <= value <= MAX_RATE_HZ:
                raise PpgedgeError(
                    f"{where}: 'sample_rate_hz' is {value}, expected 1 to {MAX_RATE_HZ:g}"
                )
        elif key == "hidden":
            if not isinstance(value, list | tuple) or not 1 <= len(value) <= MAX_HIDDEN_LAYERS:
                raise PpgedgeError(
                    f"{where}: 'hidden' must list 1 to {MAX_HIDDEN_LAYERS} layer widths"
                )
            for h in value:
                if isinstance(h, bool) or not isinstance(h, int) or not 1 <= h <= MAX_HIDDEN:
                    raise PpgedgeError(
                        f"{where}: hidden width {str(h)[:40]} is not an integer from 1 to "
                        f"{MAX_HIDDEN}"
                    )
        elif key == "members" and name == "ensemble":
            if not isinstance(value, list | tuple) or not 1 <= len(value) <= MAX_ENSEMBLE_MEMBERS:
                raise PpgedgeError(
                    f"{where}: an ensemble holds 1 to {MAX_ENSEMBLE_MEMBERS} members"
                )
            for i, member in enumerate(value):
                if not isinstance(member, dict) or member.get("arch") == "ensemble":
                    raise PpgedgeError(
                        f"{where}: ensemble member {i} is not an {{arch, kwargs}} record of a "
                        "single model"
                    )
                check_arch_kwargs(
                    member.get("arch"), member.get("kwargs", {}), f"{where}, member {i}"
                )
        else:
            raise PpgedgeError(f"{where}: unknown argument '{str(key)[:40]}' for model '{name}'")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, in_channels: int, window_samples: int) -> int:
    """Multiply-accumulates of one window, from PyTorch's own FLOP counter (FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(1, in_channels, window_samples))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
