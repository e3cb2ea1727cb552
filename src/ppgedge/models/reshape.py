"""Layer shapes that differ from an architecture's defaults (after structured pruning).

A pruned network keeps its registered architecture but some convolutions, batch norms and
linear layers have fewer channels. Rather than special-casing each architecture, a checkpoint
stores the shape of every layer that differs from ``create_model(arch, **kwargs)`` and
:func:`apply_layer_shapes` rebuilds those layers empty, before the weights are loaded.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def layer_shape(module: nn.Module) -> dict[str, Any] | None:
    """The constructor-relevant shape of a layer whose shape pruning can change."""
    if isinstance(module, nn.Conv2d):
        return {
            "type": "Conv2d",
            "in_channels": module.in_channels,
            "out_channels": module.out_channels,
            "groups": module.groups,
        }
    if isinstance(module, nn.BatchNorm2d):
        return {"type": "BatchNorm2d", "num_features": module.num_features}
    if isinstance(module, nn.Linear):
        return {
            "type": "Linear",
            "in_features": module.in_features,
            "out_features": module.out_features,
        }
    return None


def shape_differences(model: nn.Module, reference: nn.Module) -> dict[str, dict[str, Any]]:
    """Layers of ``model`` whose shape differs from the same-named layer of ``reference``."""
    ref = dict(reference.named_modules())
    out = {}
    for name, module in model.named_modules():
        shape = layer_shape(module)
        if shape is not None and (name not in ref or layer_shape(ref[name]) != shape):
            out[name] = shape
    return out


def _rebuilt(old: nn.Module, shape: dict[str, Any]) -> nn.Module:
    kind = shape["type"]
    if kind == "Conv2d" and isinstance(old, nn.Conv2d):
        return nn.Conv2d(
            shape["in_channels"],
            shape["out_channels"],
            old.kernel_size,
            old.stride,
            old.padding,
            old.dilation,
            shape["groups"],
            bias=old.bias is not None,
        )
    if kind == "BatchNorm2d" and isinstance(old, nn.BatchNorm2d):
        return nn.BatchNorm2d(
            shape["num_features"], old.eps, old.momentum, old.affine, old.track_running_stats
        )
    if kind == "Linear" and isinstance(old, nn.Linear):
        return nn.Linear(shape["in_features"], shape["out_features"], bias=old.bias is not None)
    raise ValueError(f"layer shape {shape} does not match {type(old).__name__}")


def apply_layer_shapes(model: nn.Module, shapes: dict[str, dict[str, Any]]) -> nn.Module:
    """Replace the named layers with empty layers of the recorded shapes (in place)."""
    modules = dict(model.named_modules())
    for name, shape in shapes.items():
        if name not in modules:
            raise ValueError(f"layer '{name}' is not in the architecture")
        parent_name, _, attr = name.rpartition(".")
        parent = modules[parent_name] if parent_name else model
        setattr(parent, attr, _rebuilt(modules[name], shape))
    return model
