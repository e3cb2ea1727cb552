"""The TFLite quantizer, with the patterns litert-torch's ``PT2EQuantizer`` does not annotate.

What QAT simulates must be what the ``.tflite`` computes. litert-torch 0.10 annotates
Conv+ReLU as one unit but not Linear+ReLU, and it leaves ``avg_pool2d`` unquantised:

* **Linear + ReLU.** Unannotated, the fake-quant graph rounds the linear output onto its own
  int8 grid, then rounds the ReLU output onto a second one. The converter fuses the pair into
  one FULLY_CONNECTED with a fused ReLU that rounds once, onto the ReLU's grid, so the model QAT
  trained had an extra rounding the device does not do (measured on ``mlp_micro``: 20 % of
  output elements one or more steps off). Annotated here like Conv+ReLU: inputs, weight and
  bias on the linear, the output grid on the ReLU only.
* **avg_pool2d** (the MLP's input decimation). Unannotated, the float graph averages raw floats
  and quantises the result; the device quantises the input and averages int8 values, whose
  output must keep the input's scale (TFLite's AVERAGE_POOL_2D). Annotated like litert-torch's
  max pool: the input gets an activation grid and the output shares it.
* **A sum that ends the graph** (a spectral head's logits added to the ResNet's): the stock
  ``add`` annotator finds adds by their source partition, which a top-level ``+`` in a
  model's ``forward`` does not always carry, and left unannotated the sum runs in float
  between two DEQUANTIZE ops: the model is no longer full-int8. Annotated after the stock
  list (only adds still unannotated) as the stock one does: both inputs and the output on
  activation grids.
* **reshape** keeps its producer's grid, as ``view`` already does in the stock quantizer
  (one RESHAPE, one scale); otherwise QAT observes it apart and requantises where the device
  does not.

Each annotator is one function registered in litert-torch's own annotator table under a new
name; :class:`TFLiteQuantizer` runs the first two before the stock list, so the stock
``linear`` annotator sees the fused linears as already annotated, and the last two after it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.fx import GraphModule, Node

LINEAR_RELU = "ppgedge_linear_relu"
AVG_POOL = "ppgedge_avg_pool2d"
ADD = "ppgedge_add"
SHARED_LAYOUT = "ppgedge_shared_layout"
_ADD = (torch.ops.aten.add.Tensor,)
_RESHAPE = (torch.ops.aten.reshape.default,)
_RELU = (torch.ops.aten.relu.default, torch.ops.aten.relu_.default)
_AVG_POOL = (torch.ops.aten.avg_pool2d.default,)


def _is_annotated(nodes: list[Node]) -> bool:
    return any(
        "quantization_annotation" in n.meta and n.meta["quantization_annotation"]._annotated
        for n in nodes
    )


def _mark(nodes: list[Node]) -> None:
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    for n in nodes:
        ann = n.meta.get("quantization_annotation") or QuantizationAnnotation()
        ann._annotated = True
        n.meta["quantization_annotation"] = ann


def annotate_linear_relu(
    gm: GraphModule, config: Any, filter_fn: Callable[[Node], bool] | None = None
) -> list[list[Node]]:
    """``linear -> relu`` as one unit: no output grid on the linear, one on the ReLU."""
    from litert_torch.quantize import pt2e_quantizer_utils as u
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    partitions = []
    for relu in gm.graph.nodes:
        if relu.op != "call_function" or relu.target not in _RELU:
            continue
        linear = relu.args[0]
        if (
            not isinstance(linear, Node)
            or linear.op != "call_function"
            or linear.target != torch.ops.aten.linear.default
            or len(linear.users) != 1  # the pre-ReLU value is used elsewhere: keep its grid
        ):
            continue
        act, weight = linear.args[0], linear.args[1]
        bias = linear.args[2] if len(linear.args) > 2 else None
        qspec_map = {act: u.get_input_act_qspec(config), weight: u.get_weight_qspec(config)}
        partition = [relu, linear, weight]
        if isinstance(bias, Node):
            qspec_map[bias] = u.get_bias_qspec(config)
            partition.append(bias)
        if _is_annotated(partition) or (filter_fn and not all(filter_fn(n) for n in partition)):
            continue
        linear.meta["quantization_annotation"] = QuantizationAnnotation(
            input_qspec_map=qspec_map, _annotated=True
        )
        relu.meta["quantization_annotation"] = QuantizationAnnotation(
            output_qspec=u.get_output_act_qspec(config), _annotated=True
        )
        _mark(partition)
        partitions.append(partition)
    return partitions


def annotate_avg_pool2d(
    gm: GraphModule, config: Any, filter_fn: Callable[[Node], bool] | None = None
) -> list[list[Node]]:
    """``avg_pool2d`` on int8: the input on an activation grid (shared with its producer when
    that is annotated), the output on the same grid, as TFLite's AVERAGE_POOL_2D requires."""
    from litert_torch.quantize import pt2e_quantizer_utils as u
    from torchao.quantization.pt2e.quantizer import (
        QuantizationAnnotation,
        SharedQuantizationSpec,
    )

    partitions = []
    for pool in gm.graph.nodes:
        if pool.op != "call_function" or pool.target not in _AVG_POOL:
            continue
        if _is_annotated([pool]) or (filter_fn and not filter_fn(pool)):
            continue
        act = pool.args[0]
        if not isinstance(act, Node):
            continue
        ann = act.meta.get("quantization_annotation")
        produced_on_grid = ann is not None and ann._annotated and ann.output_qspec is not None
        in_qspec = SharedQuantizationSpec(act) if produced_on_grid else None
        pool.meta["quantization_annotation"] = QuantizationAnnotation(
            input_qspec_map={act: in_qspec or u.get_input_act_qspec(config)},
            output_qspec=SharedQuantizationSpec((act, pool)),
            _annotated=True,
        )
        partitions.append([pool])
    return partitions


def annotate_remaining_add(
    gm: GraphModule, config: Any, filter_fn: Callable[[Node], bool] | None = None
) -> list[list[Node]]:
    """Every ``add`` of two tensors the stock annotators left alone: inputs and output on
    activation grids (TFLite's int8 ADD rescales both inputs to the output's)."""
    from litert_torch.quantize import pt2e_quantizer_utils as u
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    partitions = []
    for add in gm.graph.nodes:
        if add.op != "call_function" or add.target not in _ADD or len(add.args) != 2:
            continue
        a, b = add.args
        if not (isinstance(a, Node) and isinstance(b, Node)) or add.kwargs.get("alpha", 1) != 1:
            continue
        if _is_annotated([add]) or (filter_fn and not filter_fn(add)):
            continue
        qspec = u.get_input_act_qspec(config)
        add.meta["quantization_annotation"] = QuantizationAnnotation(
            input_qspec_map={a: qspec, b: qspec},
            output_qspec=u.get_output_act_qspec(config),
            _annotated=True,
        )
        partitions.append([add])
    return partitions


def annotate_shared_layout(
    gm: GraphModule, config: Any, filter_fn: Callable[[Node], bool] | None = None
) -> list[list[Node]]:
    """``reshape`` (and, in graph order, the layout ops the stock quantizer already shares:
    view, permute, flatten, squeeze...) on its producer's int8 grid, as the RESHAPE it converts
    to keeps one scale. litert-torch's ``propagate_annotation`` shares ``view`` but not
    ``reshape``; left out, a ``reshape`` got its own observer and QAT requantised onto a grid
    the device never uses (1-step output differences in 96 % of windows on a spectral head)."""
    from litert_torch.quantize import pt2e_quantizer_utils as u
    from torchao.quantization.pt2e.quantizer import (
        QuantizationAnnotation,
        SharedQuantizationSpec,
    )

    partitions = []
    for node in gm.graph.nodes:
        if node.op != "call_function" or not (
            node.target in _RESHAPE or u._is_share_obs_or_fq_op(node.target)
        ):
            continue
        prev = node.args[0] if node.args else None
        ann = prev.meta.get("quantization_annotation") if isinstance(prev, Node) else None
        if ann is None or ann.output_qspec is None or _is_annotated([node]):
            continue
        if filter_fn and not filter_fn(node):
            continue
        shared = SharedQuantizationSpec(prev)
        node.meta["quantization_annotation"] = QuantizationAnnotation(
            input_qspec_map={prev: shared}, output_qspec=shared, _annotated=True
        )
        partitions.append([node])
    return partitions


def tflite_quantizer(config: Any) -> Any:
    """litert-torch's ``PT2EQuantizer`` with :func:`annotate_linear_relu` and
    :func:`annotate_avg_pool2d` run first, :func:`annotate_remaining_add` and
    :func:`annotate_shared_layout` last, set globally to ``config``."""
    from litert_torch.quantize import pt2e_quantizer as q
    from litert_torch.quantize import pt2e_quantizer_utils as u

    u.OP_TO_ANNOTATOR.setdefault(LINEAR_RELU, annotate_linear_relu)
    u.OP_TO_ANNOTATOR.setdefault(AVG_POOL, annotate_avg_pool2d)
    u.OP_TO_ANNOTATOR.setdefault(ADD, annotate_remaining_add)
    u.OP_TO_ANNOTATOR.setdefault(SHARED_LAYOUT, annotate_shared_layout)

    class TFLiteQuantizer(q.PT2EQuantizer):
        STATIC_OPS = [LINEAR_RELU, AVG_POOL, *q.PT2EQuantizer.STATIC_OPS, ADD, SHARED_LAYOUT]

    return TFLiteQuantizer().set_global(config)


def has_fused_patterns(gm: GraphModule) -> bool:
    """Whether the graph holds a pattern these annotations change (an artifact quantised
    without them has a different set of fake quantisers)."""
    for n in gm.graph.nodes:
        if n.op != "call_function":
            continue
        if n.target in _AVG_POOL:
            return True
        producer = getattr(n.args[0], "target", None) if n.args else None
        if n.target in _RELU and producer == torch.ops.aten.linear.default:
            return True
    return False
