"""TFLite conversion of a quantised artifact, with the scales it will carry.

:func:`to_tflite` lowers the artifact's reference graph through ``litert_torch.convert`` with the
same quantizer, so nothing is recalibrated; :func:`scales_of_artifact` reads the scales the
prepared graph's observers hold, to compare with :func:`scales_of_tflite` on the result.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ppgedge.atomic import atomic_path
from ppgedge.compress.pt2e import _qparams, _quantizer, _require, export_example
from ppgedge.compress.quantized_artifact import QuantizedArtifact, _as_artifact
from ppgedge.compress.runtimes import quiet_stderr


@contextlib.contextmanager
def _quiet_litert() -> Iterator[None]:
    """litert-torch prints a progress tree on stdout; the CLI renders its own."""
    key = "LITERT_TORCH_SHOW_PROGRESS"
    old = os.environ.get(key)
    os.environ[key] = "n"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def to_tflite(artifact: QuantizedArtifact | str | Path, out_path: str | Path) -> Path:
    """Full-int8 ``.tflite`` (int8 input and output) from an artifact, no recalibration.

    The input is channel-last, (1, 1, T, C): the layout TFLite kernels work in, so the
    converter needs no TRANSPOSE at the input (one would cost the device SRAM and time).
    """
    art = _as_artifact(artifact)
    litert_torch = _require("litert_torch", "TFLite conversion")
    qcfg = _require("litert_torch.quantize.quant_config", "TFLite conversion")
    ref = art.reference()
    channel_last = litert_torch.to_channel_last_io(ref, args=[0]).eval()
    example = export_example(art.data_format, batch=1).permute(0, 2, 3, 1).contiguous()
    out_path = Path(out_path)
    with _quiet_litert(), quiet_stderr():  # the converter's C++ info lines on fd 2
        edge = litert_torch.convert(
            channel_last,
            (example,),
            quant_config=qcfg.QuantConfig(pt2e_quantizer=_quantizer(art.is_qat)),
        )
        with atomic_path(out_path) as tmp:
            edge.export(str(tmp))
    return out_path


def _weight_source(node: Any) -> str:
    """The parameter a weight observer ultimately reads (through BN-folding arithmetic)."""
    frontier, seen = [node], set()
    while frontier:
        n = frontier.pop(0)
        if n in seen or not hasattr(n, "op"):
            continue
        seen.add(n)
        if n.op == "get_attr" and str(n.target).endswith("weight"):
            return str(n.target)
        frontier.extend(a for a in n.args if hasattr(a, "op"))
    return "?"


def scales_of_artifact(artifact: QuantizedArtifact | str | Path) -> dict[str, Any]:
    """The scales ``convert_pt2e`` writes, read from the prepared graph's observers: input,
    output and each conv/linear weight in graph order (comparable with
    :func:`scales_of_tflite`)."""
    prepared = _as_artifact(artifact).prepared()
    modules = dict(prepared.named_modules())

    def observer_of(node: Any) -> nn.Module | None:
        if node is not None and getattr(node, "op", None) == "call_module":
            mod = modules.get(str(node.target))
            if mod is not None and hasattr(mod, "calculate_qparams"):
                return mod
        return None

    def entry(mod: nn.Module) -> dict[str, Any]:
        scale, zp = _qparams(mod)
        return {"scale": scale, "zero_point": zp}

    result: dict[str, Any] = {"weights": []}
    targets = {
        torch.ops.aten.conv2d.default: "conv2d",
        torch.ops.aten.conv1d.default: "conv2d",
        torch.ops.aten.linear.default: "linear",
    }
    for node in prepared.graph.nodes:
        if node.op == "placeholder" and "input" not in result:
            for user in node.users:
                if (mod := observer_of(user)) is not None:
                    result["input"] = entry(mod)
                    break
        elif node.op == "call_function" and node.target in targets:
            mod = observer_of(node.args[1])
            if mod is not None:
                result["weights"].append(
                    {
                        "op": targets[node.target],
                        "param": _weight_source(node.args[1]),
                        **entry(mod),
                    }
                )
        elif node.op == "output":
            first = node.args[0]
            first = first[0] if isinstance(first, (tuple, list)) else first
            if (mod := observer_of(first)) is not None:
                result["output"] = entry(mod)
    return result
