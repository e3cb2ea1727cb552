"""Re-fit the int8 model's final FULLY_CONNECTED bias, and nothing else, in the .tflite bytes.

Per-user calibration (personalisation) on a wearable has to be cheap to ship and safe to apply:
changing only the last layer's int32 bias keeps every weight, every scale and the graph as they
were, so the new model is the old file with a few hundred bytes rewritten, and the firmware
image differs only there. The steps:

1. find the final FULLY_CONNECTED op (it must produce the graph's output) and its int8 input,
   int8 weights, int32 bias and their scales;
2. compute the op's int8 input activations as TFLite Micro does, by running a copy of the
   model whose output is that input tensor (the FC op dropped): the device's arithmetic;
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

import flatbuffers
import numpy as np
import torch

from ppgedge.compress.runtimes import run_raw
from ppgedge.compress.tflite_file import op_name, read_model, schema, tensor_quant
from ppgedge.errors import PpgedgeError
from ppgedge.models.bpm import gaussian_targets

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
BASES = ("free", "linear", "quadratic", "cubic")


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
    """The last op, which must be an int8 FULLY_CONNECTED with an int32 bias producing the
    model's output; anything else is one line saying why it cannot be personalised."""
    path = Path(path)
    model = read_model(path)
    sub = model.subgraphs[0]
    ops = list(sub.operators)
    last = ops[-1] if ops else None
    if last is None or op_name(model, last) != "FULLY_CONNECTED":
        what = op_name(model, last) if last is not None else "missing"
        raise PpgedgeError(
            f"{path}: the last op is {what}, not FULLY_CONNECTED, so there is no final-layer "
            "bias to personalise: use a ppgedge export of a model that ends in its classifier "
            "(not one whose output is a sum of two heads, such as resnet_small_spectral)"
        )
    if int(last.outputs[0]) != int(sub.outputs[0]) or len(last.inputs) < 3 or last.inputs[2] < 0:
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
        op_index=len(ops) - 1,
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
    )


def fc_inputs(path: str | Path, layer: FinalLayer, windows: np.ndarray) -> np.ndarray:
    """int8 (N, in) inputs of the final layer as TFLite Micro computes them: a copy of the
    model that stops before the final op, its output the op's input tensor."""
    model = read_model(path)
    sub = model.subgraphs[0]
    sub.operators = sub.operators[: layer.op_index]
    sub.outputs = [layer.input_tensor]
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with tempfile.TemporaryDirectory() as tmp:
        trunk = Path(tmp) / "trunk.tflite"
        trunk.write_bytes(bytes(builder.Output()))
        raw = run_raw(trunk, windows, "tflm")
    return raw.reshape(len(windows), -1).astype(np.int8)


def fit_bias(
    layer: FinalLayer,
    features: np.ndarray,
    bpm: np.ndarray,
    *,
    sigma: float = 1.5,
    l2: float = 0.1,
    basis: str = "free",
    max_iter: int = 200,
) -> np.ndarray:
    """Float bias minimising cross-entropy to Gaussian targets + ``l2`` x mean squared change
    from the deployed bias (in float logits, so ``l2`` means the same whatever the output
    scale); weights fixed. ``basis`` shapes the change (see the module doc)."""
    base = torch.from_numpy(layer.accumulate(features))
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
