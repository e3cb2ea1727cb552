"""The PT2E quantizer: litert-torch's TFLite ``PT2EQuantizer`` on a ``torch.export`` graph.

This is the one quantizer the exporter (``litert_torch.convert``) lowers from, so the scales
learned here are, bit for bit, the scales in the ``.tflite``. PTQ, QAT, artifact loading and
TFLite conversion all build their graphs through it.

It also holds the workarounds for torch 2.13 + torchao 0.18 + litert-torch 0.10 (installed once,
see :func:`_install_pt2e_fixes`): torchao's pattern exporter is handed plain functions, which
``torch.export`` now refuses, so they are wrapped in a Module; patterns for conv kinds the model
does not contain are skipped and the rest memoised per process. QAT uses torchao's plain
``FakeQuantize`` rather than the fused op litert-torch's config names, because the fused CPU op
trains with scales that differ from the ones exported (see :func:`_quantizer`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import importlib
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ppgedge.compress.annotations import tflite_quantizer
from ppgedge.compress.runtimes import quiet_stderr
from ppgedge.data.format import DataFormat
from ppgedge.errors import PpgedgeError
from ppgedge.models.checkpoint import Checkpoint

QUANTIZER = "litert_torch PT2EQuantizer + ppgedge linear_relu, avg_pool2d annotations"
QUANTIZER_CONFIG = "get_symmetric_quantization_config"
FAKE_QUANT = "torchao FakeQuantize (unfused) + moving-average min/max observers"


def _require(module: str, what: str) -> Any:
    try:
        if module in sys.modules:
            return sys.modules[module]
        with quiet_stderr():  # TensorFlow's C++ start-up lines (oneDNN notice) on fd 2
            return importlib.import_module(module)
    except ImportError as exc:
        raise PpgedgeError(
            f"{what} needs '{module.split('.')[0]}' ({exc}): install litert-torch==0.10.0, "
            "tflite-micro and torch==2.13.0 in one command"
        ) from None


@functools.cache
def _pt2e() -> Any:
    """torchao's PT2E entry points (imported on first use: they are slow to import)."""
    ns = _require("torchao.quantization.pt2e", "quantisation")
    qpt2e = _require("torchao.quantization.pt2e.quantize_pt2e", "quantisation")
    _install_pt2e_fixes()
    ns.prepare_pt2e = qpt2e.prepare_pt2e
    ns.prepare_qat_pt2e = qpt2e.prepare_qat_pt2e
    ns.convert_pt2e = qpt2e.convert_pt2e
    return ns


def _unfused(spec: Any) -> Any:
    """The same quantisation spec with torchao's plain ``FakeQuantize`` in place of
    ``FusedMovingAvgObsFakeQuantize`` (same moving-average observer and arguments)."""
    if spec is None:
        return None
    from torchao.quantization.pt2e.fake_quantize import FakeQuantize
    from torchao.quantization.pt2e.observer import MovingAverageMinMaxObserver

    kwargs = dict(spec.observer_or_fake_quant_ctr.p.keywords)
    kwargs.setdefault("observer", MovingAverageMinMaxObserver)
    return dataclasses.replace(spec, observer_or_fake_quant_ctr=FakeQuantize.with_args(**kwargs))


def _quantizer(is_qat: bool) -> Any:
    """litert-torch's TFLite quantizer: per-channel symmetric weights, per-tensor activations.

    For QAT the fake quantisers are unfused. The fused CPU op computes its own scales, which
    are not the ones ``convert_pt2e`` (hence the .tflite) takes from the observer: weight scales
    came out as absmax/127.5 instead of absmax/127, and a channel whose weights all share one
    sign got a zero point of 127 (TFLite needs 0). Plain ``FakeQuantize`` trains with exactly
    the observer's ``calculate_qparams()``, the values that are exported.
    """
    q = _require("litert_torch.quantize.pt2e_quantizer", "quantisation")
    config = q.get_symmetric_quantization_config(is_per_channel=True, is_qat=is_qat)
    if is_qat:
        config = dataclasses.replace(
            config,
            input_activation=_unfused(config.input_activation),
            output_activation=_unfused(config.output_activation),
            weight=_unfused(config.weight),
        )
    return tflite_quantizer(config)


def _hashable(value: Any, by_value: bool = False) -> Any:
    """A cache key for a pattern argument: example tensors by shape and dtype (they become
    placeholders, their random values do not matter); tensors a pattern closes over by value;
    everything else by value (TypeError when unhashable: no caching then)."""
    if isinstance(value, torch.Tensor):
        key = ("tensor", tuple(value.shape), str(value.dtype), str(value.device))
        return (*key, tuple(value.flatten().tolist())) if by_value else key
    if isinstance(value, (tuple, list)):
        return tuple(_hashable(v, by_value) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v, by_value)) for k, v in value.items()))
    hash(value)
    return value


def _pattern_key(pattern: Any, example_inputs: Any, is_cuda: bool, kwargs: dict) -> Any:
    fn = getattr(pattern, "fn", pattern) if isinstance(pattern, nn.Module) else pattern
    code = getattr(fn, "__code__", None)
    if code is None:
        raise TypeError("not a plain function")
    cells = tuple(_hashable(c.cell_contents, by_value=True) for c in (fn.__closure__ or ()))
    defaults = _hashable(fn.__defaults__ or (), by_value=True)
    return (code, cells, defaults, _hashable(example_inputs), is_cuda, _hashable(kwargs))


_FIXES_INSTALLED = False


def _install_pt2e_fixes() -> None:
    """Patch torchao/litert-torch internals in this process (idempotent; semantics unchanged).

    1. ``_get_aten_graph_module_for_pattern`` receives plain functions from litert-torch's
       conv-bn annotator and torchao's QAT fuse/fold passes; torch 2.13's ``torch.export``
       accepts only Modules, so functions are wrapped in torchao's own ``WrapperModule``.
       Results are memoised (a deep copy is returned: callers mutate the pattern graph).
    2. QAT fusion and folding try conv1d, conv2d and both transposed convs (the fold: 24
       patterns each); kinds absent from the graph are skipped.
    """
    global _FIXES_INSTALLED
    if _FIXES_INSTALLED:
        return
    from torchao.quantization.pt2e import qat_utils, utils
    from torchao.quantization.pt2e.export_utils import WrapperModule

    original = utils._get_aten_graph_module_for_pattern
    cache: dict[Any, Any] = {}

    def pattern_graph(pattern, example_inputs, is_cuda=False, **kwargs):
        with warnings.catch_warnings():  # torch's pytree deprecation, raised by deepcopy
            warnings.simplefilter("ignore", FutureWarning)
            return _pattern_graph(pattern, example_inputs, is_cuda, **kwargs)

    def _pattern_graph(pattern, example_inputs, is_cuda=False, **kwargs):
        try:
            key = _pattern_key(pattern, example_inputs, is_cuda, kwargs)
        except (TypeError, ValueError):  # unhashable or empty closure cell: no caching
            key = None
        if key is not None and key in cache:
            return copy.deepcopy(cache[key])
        module = pattern if isinstance(pattern, nn.Module) else WrapperModule(pattern)
        gm = original(module, example_inputs, is_cuda, **kwargs)
        if key is not None:
            cache[key] = copy.deepcopy(gm)
        return gm

    targets = [utils, qat_utils]
    with contextlib.suppress(ImportError), quiet_stderr():
        targets.append(importlib.import_module("litert_torch.quantize.pt2e_quantizer_utils"))
    for mod in targets:
        if hasattr(mod, "_get_aten_graph_module_for_pattern"):
            mod._get_aten_graph_module_for_pattern = pattern_graph

    def only_present(helper: Callable) -> Callable:
        def run(m, conv_fn, example_inputs, is_cuda=False):
            prefix = f"aten.{conv_fn.__name__}."
            present = any(
                n.op == "call_function" and str(n.target).startswith(prefix) for n in m.graph.nodes
            )
            return helper(m, conv_fn, example_inputs, is_cuda=is_cuda) if present else m

        return run

    qat_utils._fuse_conv_bn_qat_helper = only_present(qat_utils._fuse_conv_bn_qat_helper)
    qat_utils._fold_conv_bn_qat_helper = only_present(qat_utils._fold_conv_bn_qat_helper)
    _FIXES_INSTALLED = True


def export_example(fmt: DataFormat, batch: int = 2) -> torch.Tensor:
    """An input in the export layout (B, C, 1, T); batch 2 so the batch dimension stays free."""
    return torch.zeros(batch, len(fmt.channels), 1, fmt.window_samples)


def build_prepared(base: Checkpoint, is_qat: bool) -> torch.fx.GraphModule:
    """Float model -> ``torch.export`` (dynamic batch) -> prepared graph with observers (PTQ)
    or fake quantisers (QAT); in eval mode, ``.train()``/``.eval()`` switch batch norm."""
    pt = _pt2e()
    model = base.build().cpu()
    batch = torch.export.Dim("batch")
    exported = torch.export.export(
        model, (export_example(base.data_format),), dynamic_shapes=({0: batch},)
    )
    prepare = pt.prepare_qat_pt2e if is_qat else pt.prepare_pt2e
    prepared = prepare(exported.module(), _quantizer(is_qat))
    pt.allow_exported_model_train_eval(prepared)
    prepared.eval()
    return prepared


def set_observers(prepared: nn.Module, enabled: bool) -> None:
    """Let fake quantisers update their ranges (calibration, QAT) or freeze them."""
    pt = _pt2e()
    prepared.apply(pt.enable_observer if enabled else pt.disable_observer)


class Windows4D(nn.Module):
    """Takes the loaders' (B, C, T) windows and feeds the graph's (B, C, 1, T) input."""

    def __init__(self, graph: nn.Module) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(x.unsqueeze(2) if x.dim() == 3 else x)


def calibrate(
    prepared: nn.Module, windows: np.ndarray | torch.Tensor, fmt: DataFormat, batch_size: int = 256
) -> int:
    """Run representative windows through the observers; returns how many were seen.

    Fake quantisers (QAT) see all windows in one batch, so their moving-average ranges start
    at the calibration set's min/max rather than being dominated by its first batch.
    """
    x = torch.as_tensor(np.asarray(windows, dtype=np.float32))
    if x.dim() == 4 and x.shape[2] == 1:
        x = x[:, :, 0]
    expected = (len(fmt.channels), fmt.window_samples)
    if x.dim() != 3 or tuple(x.shape[1:]) != expected:
        raise PpgedgeError(
            f"calibration windows have shape {tuple(x.shape)}; the model takes "
            f"(N, {expected[0]}, {expected[1]}) windows ({', '.join(fmt.channels)})"
        )
    if len(x) == 0:
        raise PpgedgeError(
            "no calibration windows: choose a split part that has windows or raise --windows"
        )
    if not torch.isfinite(x).all():
        raise PpgedgeError("calibration windows contain NaN or infinite values")
    fake_quant = any(hasattr(m, "fake_quant_enabled") for m in prepared.modules())
    step = len(x) if fake_quant else batch_size
    prepared.eval()
    if fake_quant:
        set_observers(prepared, True)
    with torch.no_grad():
        for start in range(0, len(x), step):
            prepared(x[start : start + step].unsqueeze(2))
    return len(x)


def _qparams(module: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """The (scale, zero point) that ``convert_pt2e`` will write for this observer."""
    scale, zp = module.calculate_qparams()
    return (
        np.atleast_1d(scale.detach().cpu().numpy().astype(np.float32)),
        np.atleast_1d(zp.detach().cpu().numpy().astype(np.int64)),
    )


def scheme(is_qat: bool) -> dict[str, Any]:
    """The quantizer configuration recorded in an artifact (and checked when it is loaded)."""
    versions = {"torch": str(torch.__version__)}
    for pkg in ("torchao", "litert_torch"):
        with contextlib.suppress(ImportError, AttributeError):
            versions[pkg] = str(importlib.import_module(pkg).__version__)
    return {
        "quantizer": QUANTIZER,
        "config": QUANTIZER_CONFIG,
        "is_per_channel": True,
        "is_qat": bool(is_qat),
        "is_dynamic": False,
        "fake_quant": FAKE_QUANT if is_qat else None,
        "weights": "int8, symmetric, per output channel",
        "activations": "int8, asymmetric, per tensor",
        "bias": "int32",
        "batch_norm": "folded",
        "input_layout": "B,C,1,T",
        "versions": versions,
    }
