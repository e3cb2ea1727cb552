"""Re-fit the int8 model's final FULLY_CONNECTED bias, and nothing else, in the .tflite bytes.

Per-user calibration (personalisation) on a wearable has to be cheap to ship and safe to apply:
changing only the last layer's int32 bias keeps every weight, every scale and the graph as they
were, so the new model is the old file with a few hundred bytes rewritten, and the firmware
image differs only there. The steps:

1. find the final FULLY_CONNECTED op and its int8 input, int8 weights, int32 bias and their
   scales. It produces the graph's output, or one input of a final ADD whose other input is a
   parallel branch (``resnet_small_spectral``'s spectral head): the classifier's bias is
   refitted with the branch's logits added, as the device adds them;
2. compute the op's int8 input activations (and the branch's int8 output) as TFLite Micro
   does, by running a copy of the model whose outputs are those tensors (the FC and the final
   ADD dropped; one pass for both): the device's arithmetic;
3. fit the float bias with the weights fixed, minimising the cross-entropy against the
   project's Gaussian targets plus an L2 pull towards the deployed bias, with full-batch L-BFGS
   (deterministic). The change may be free (one value per class) or a low-order polynomial of
   the class's BPM: a few minutes at one heart rate can then tilt the output (a wearer the
   model reads too high or too low) but cannot teach a narrow prior around that rate. Both
   knobs, basis and L2, are chosen on validation subjects (benchmarks/personalize.py);
4. quantise it with the existing bias scale (input scale x per-channel weight scale, zero point
   0) and write it over the bias buffer's bytes in place.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
import torch

from ppgedge.compress.runtimes import run_raw_outputs
from ppgedge.compress.tflite_file import op_name, read_model, schema, tensor_quant
from ppgedge.errors import PpgedgeError
from ppgedge.models.bpm import gaussian_targets

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
BASES = ("free", "linear", "quadratic", "cubic")


@dataclass
class Branch:
    """The other input of a final ``ADD(classifier, branch)``: its int8 tensor and grid."""

    add_op_index: int
    tensor: int
    scale: float
    zero_point: int


@dataclass
class FinalLayer:
    """The final FULLY_CONNECTED op of a .tflite, with what a bias fit needs."""

    op_index: int
    input_tensor: int
    bias_name: str
    input_scale: float
    input_zero_point: int
    weights: np.ndarray  # int8 (out, in)
    weight_scale: np.ndarray  # float (out,) per channel (broadcast when per tensor)
    bias: np.ndarray  # int32 (out,)
    bias_offset: int  # byte offset of the bias data in the file
    output_scale: float
    output_zero_point: int
    branch: Branch | None = None  # the output is this layer's plus a branch's (ADD)

    @property
    def bias_scale(self) -> np.ndarray:
        return (np.float64(self.input_scale) * self.weight_scale.astype(np.float64)).astype(
            np.float64
        )

    def accumulate(self, features: np.ndarray) -> np.ndarray:
        """Float logits without bias: input scale x weight scale x integer dot product."""
        acc = (features.astype(np.int64) - self.input_zero_point) @ self.weights.T.astype(np.int64)
        return acc.astype(np.float64) * self.bias_scale[None, :]


def _buffer_bytes(data: bytes, index: int) -> tuple[int, int]:
    """(file offset, length) of buffer ``index``'s data: inside the flatbuffer, or after it
    (models over 2 GB)."""
    fb = schema()
    buf = fb.Model.GetRootAsModel(data, 0).Buffers(index)
    if buf is None:
        raise PpgedgeError(f"buffer {index} is missing from the model")
    if int(buf.Offset()) > 1:
        return int(buf.Offset()), int(buf.Size())
    field = buf._tab.Offset(4)  # Buffer.data, the table's first field
    if field == 0:
        return 0, 0
    return int(buf._tab.Vector(field)), int(buf._tab.VectorLen(field))


def final_layer(path: str | Path) -> FinalLayer:
    """The classifier: the last op, an int8 FULLY_CONNECTED with an int32 bias producing the
    model's output, or a final ADD of such a layer and another branch; anything else is one
    line saying why it cannot be personalised."""
    path = Path(path)
    model = read_model(path)
    sub = model.subgraphs[0]
    ops = list(sub.operators)
    last = ops[-1] if ops else None
    index, branch = len(ops) - 1, None
    if last is not None and op_name(model, last) == "ADD":
        index, branch = _summed_classifier(path, model, sub, ops)
        last = ops[index]
    elif last is None or op_name(model, last) != "FULLY_CONNECTED":
        what = op_name(model, last) if last is not None else "missing"
        raise PpgedgeError(
            f"{path}: the last op is {what}, not FULLY_CONNECTED (or an ADD of one), so there "
            "is no final-layer bias to personalise: use a ppgedge export of a model that ends "
            "in its classifier"
        )
    # (a summed classifier was found as a biased FULLY_CONNECTED feeding the final ADD)
    is_output = branch is not None or int(last.outputs[0]) == int(sub.outputs[0])
    if not is_output or len(last.inputs) < 3 or last.inputs[2] < 0:
        raise PpgedgeError(f"{path}: the final FULLY_CONNECTED has no bias or is not the output")
    x_q, w_q, b_q, y_q = (tensor_quant(sub, int(i)) for i in (*last.inputs[:3], last.outputs[0]))
    if (x_q["dtype"], w_q["dtype"], b_q["dtype"]) != ("INT8", "INT8", "INT32"):
        raise PpgedgeError(
            f"{path}: the final layer is {x_q['dtype']}/{w_q['dtype']}/{b_q['dtype']}, not a "
            "full-int8 model: personalise the int8 export (ppgedge export), not a float model"
        )
    data = path.read_bytes()
    w_tensor = sub.tensors[int(last.inputs[1])]
    b_tensor = sub.tensors[int(last.inputs[2])]
    w_off, w_len = _buffer_bytes(data, int(w_tensor.buffer))
    b_off, b_len = _buffer_bytes(data, int(b_tensor.buffer))
    n_out = int(b_q["shape"][0])
    if b_len != 4 * n_out or w_len != n_out * int(w_q["shape"][1]):
        raise PpgedgeError(f"{path}: the final layer's weights or bias are not stored constants")
    weights = np.frombuffer(data, np.int8, w_len, w_off).reshape(n_out, -1).copy()
    bias = np.frombuffer(data, "<i4", n_out, b_off).astype(np.int32)
    return FinalLayer(
        op_index=index,
        input_tensor=int(last.inputs[0]),
        bias_name=b_q["name"],
        input_scale=float(x_q["scale"][0]),
        input_zero_point=int(x_q["zero_point"][0]),
        weights=weights,
        weight_scale=np.broadcast_to(w_q["scale"].astype(np.float64), (n_out,)).copy(),
        bias=bias,
        bias_offset=b_off,
        output_scale=float(y_q["scale"][0]),
        output_zero_point=int(y_q["zero_point"][0]),
        branch=branch,
    )


def _summed_classifier(path: Path, model: Any, sub: Any, ops: list) -> tuple[int, Branch]:
    """(op index of the classifier, the other branch) of a graph ending in ``ADD(a, b)``: the
    classifier is the input made by a FULLY_CONNECTED with a bias that feeds nothing else."""
    add = ops[-1]
    if int(add.outputs[0]) != int(sub.outputs[0]) or len(add.inputs) != 2:
        raise PpgedgeError(f"{path}: the final ADD is not the model's only output")
    producer = {int(t): i for i, op in enumerate(ops) for t in op.outputs}
    readers: dict[int, int] = {}
    for op in ops:
        for t in op.inputs:
            readers[int(t)] = readers.get(int(t), 0) + 1
    found = []
    for k, t in enumerate(int(t) for t in add.inputs):
        i = producer.get(t)
        if i is None or op_name(model, ops[i]) != "FULLY_CONNECTED" or readers.get(t) != 1:
            continue
        if len(ops[i].inputs) >= 3 and ops[i].inputs[2] >= 0:
            found.append((i, int(add.inputs[1 - k])))
    if len(found) != 1:
        why = "neither is" if not found else "both are"
        raise PpgedgeError(
            f"{path}: the model's output is an ADD of two branches and {why} a classifier "
            "(a FULLY_CONNECTED with a bias that feeds only the sum): nothing to personalise"
        )
    index, other = found[0]
    q = tensor_quant(sub, other)
    if q["dtype"] != "INT8":
        raise PpgedgeError(
            f"{path}: the final ADD's other input is {q['dtype']}, not int8: personalise the "
            "int8 export (ppgedge export), not a float model"
        )
    return index, Branch(len(ops) - 1, other, float(q["scale"][0]), int(q["zero_point"][0]))


def fc_inputs(path: str | Path, layer: FinalLayer, windows: np.ndarray) -> np.ndarray:
    """int8 (N, in) inputs of the final layer as TFLite Micro computes them: a copy of the
    model that stops before the final op, its output the op's input tensor."""
    return _trunk_outputs(path, layer, windows, [layer.input_tensor])[0].astype(np.int8)


def branch_logits(path: str | Path, layer: FinalLayer, windows: np.ndarray) -> np.ndarray | None:
    """Float (N, K) logits the branch adds to the classifier's (None: no branch), from its
    int8 output as TFLite Micro computes it."""
    if layer.branch is None:
        return None
    return _branch_float(layer, _trunk_outputs(path, layer, windows, [layer.branch.tensor])[0])


def calibration_inputs(
    path: str | Path, layer: FinalLayer, windows: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`fc_inputs` and :func:`branch_logits` from one TFLite Micro pass over the trunk
    (its two tensors as the cut model's two outputs)."""
    tensors = [layer.input_tensor] + ([layer.branch.tensor] if layer.branch else [])
    outs = _trunk_outputs(path, layer, windows, tensors)
    branch = _branch_float(layer, outs[1]) if layer.branch else None
    return outs[0].astype(np.int8), branch


def _branch_float(layer: FinalLayer, raw: np.ndarray) -> np.ndarray:
    b = layer.branch
    return (raw.astype(np.float64) - b.zero_point) * b.scale


def _trunk_outputs(
    path: str | Path, layer: FinalLayer, windows: np.ndarray, tensors: list[int]
) -> list[np.ndarray]:
    """int8 (N, -1) values of each of ``tensors``: the model without the classifier and the
    final ADD, run once in TFLite Micro with ``tensors`` as its outputs."""
    model = read_model(path)
    sub = model.subgraphs[0]
    drop = {layer.op_index} | ({layer.branch.add_op_index} if layer.branch else set())
    sub.operators = [op for i, op in enumerate(sub.operators) if i not in drop]
    sub.outputs = list(tensors)
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with tempfile.TemporaryDirectory() as tmp:
        trunk = Path(tmp) / "trunk.tflite"
        trunk.write_bytes(bytes(builder.Output()))
        raws = run_raw_outputs(trunk, windows, len(tensors), "tflm")
    return [raw.reshape(len(windows), -1) for raw in raws]


def fit_bias(
    layer: FinalLayer,
    features: np.ndarray,
    bpm: np.ndarray,
    *,
    sigma: float = 1.5,
    l2: float = 0.1,
    basis: str = "free",
    max_iter: int = 200,
    branch: np.ndarray | None = None,
) -> np.ndarray:
    """Float bias minimising cross-entropy to Gaussian targets + ``l2`` x mean squared change
    from the deployed bias (in float logits, so ``l2`` means the same whatever the output
    scale); weights fixed. ``basis`` shapes the change (see the module doc). ``branch``: the
    float logits a final ADD sums with the classifier's (:func:`branch_logits`); the
    classifier's int8 saturation is not modelled (QAT fitted its range to its values)."""
    if (branch is None) != (layer.branch is None):
        raise ValueError("branch logits are needed exactly when the model ends in an ADD")
    base = torch.from_numpy(layer.accumulate(features))
    if branch is not None:
        base = base + torch.from_numpy(np.asarray(branch, np.float64))
    b0 = torch.from_numpy(layer.bias.astype(np.float64) * layer.bias_scale)
    target = gaussian_targets(torch.from_numpy(np.asarray(bpm, np.float32)), sigma).double()
    shape = torch.from_numpy(_basis(basis, b0.numel()))
    theta = torch.zeros(shape.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        delta = shape @ theta
        ce = -(target * torch.log_softmax(base + b0 + delta, dim=1)).sum(dim=1).mean()
        loss = ce + l2 * (delta**2).mean()
        loss.backward()
        return loss

    opt.step(closure)
    return (b0 + shape @ theta.detach()).numpy()


def _basis(name: str, n: int) -> np.ndarray:
    """(n, k) columns spanning the allowed bias changes: identity, or Legendre polynomials of
    degree 1.. in the class index mapped to [-1, 1] (a constant changes nothing)."""
    if name == "free":
        return np.eye(n)
    if name not in BASES:
        raise PpgedgeError(f"unknown bias basis '{name}': use one of {', '.join(BASES)}")
    u = np.linspace(-1.0, 1.0, n)
    degree = BASES.index(name)
    return np.stack([np.polynomial.legendre.Legendre.basis(d)(u) for d in range(1, degree + 1)], 1)


def quantize_bias(layer: FinalLayer, bias: np.ndarray) -> np.ndarray:
    """Float bias -> int32 with the existing bias scale (zero point 0), round half to even."""
    q = np.round(np.asarray(bias, np.float64) / layer.bias_scale)
    return np.clip(q, INT32_MIN, INT32_MAX).astype(np.int32)


def with_bias(data: bytes, layer: FinalLayer, bias_q: np.ndarray) -> tuple[bytes, list[int]]:
    """The model's bytes with the final bias replaced, and the byte offsets that changed."""
    new = bytearray(data)
    start, end = layer.bias_offset, layer.bias_offset + 4 * layer.bias.size
    new[start:end] = np.asarray(bias_q, "<i4").tobytes()
    changed = np.flatnonzero(np.frombuffer(bytes(new), np.uint8) != np.frombuffer(data, np.uint8))
    return bytes(new), [int(i) for i in changed]
