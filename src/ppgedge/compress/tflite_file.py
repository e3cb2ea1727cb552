"""Read a ``.tflite`` flatbuffer: operators, tensors and their quantisation.

Uses the schema module that ships inside tflite-micro (the object API, ``ModelT``), so what we
read is what the TFLite Micro interpreter reads. Any failure to parse becomes one
:class:`PpgedgeError` naming the file: a truncated or foreign file is a user error, not a crash.
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path
from typing import Any

import numpy as np

from ppgedge.errors import PpgedgeError

SCHEMA_MODULE = "tflite_micro.tensorflow.lite.micro.python.schema_py_generated"
WEIGHT_OPS = {"CONV_2D": "conv2d", "DEPTHWISE_CONV_2D": "conv2d", "FULLY_CONNECTED": "linear"}


@functools.cache
def schema() -> Any:
    try:
        return importlib.import_module(SCHEMA_MODULE)
    except ImportError as exc:  # pragma: no cover - a pinned dependency
        raise PpgedgeError(
            f"reading .tflite needs tflite-micro ({exc}); reinstall with: pip install -e ."
        ) from None


def read_model(path: str | Path) -> Any:
    """The whole model as a ``ModelT`` object tree."""
    path = Path(path)
    if not path.is_file():
        raise PpgedgeError(f"{path}: no such .tflite file")
    data = path.read_bytes()
    # the bounded reader first: object-API unpacking trusts every count and subgraph reference
    from ppgedge.profile.tflite_reader import parse_unvalidated

    try:
        parse_unvalidated(data, str(path))
    except PpgedgeError as exc:
        detail = str(exc).removeprefix(f"{path}: ")
        raise PpgedgeError(f"{path}: not a readable .tflite file ({detail})") from None
    fb = schema()
    try:
        if len(data) < 8 or not fb.Model.ModelBufferHasIdentifier(data, 0):
            raise ValueError("no TFL3 identifier")
        model = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(data, 0))
        if not model.subgraphs:
            raise ValueError("no subgraph")
    except Exception as exc:  # noqa: BLE001  any flatbuffer failure means "not a model"
        raise PpgedgeError(f"{path}: not a readable .tflite file ({exc})") from None
    return model


@functools.cache
def enum_names(name: str) -> dict[int, str]:
    """Value -> name of a schema enum such as ``BuiltinOperator`` or ``TensorType``."""
    cls = getattr(schema(), name)
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def op_name(model: Any, op: Any) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    name = enum_names("BuiltinOperator").get(builtin, f"BUILTIN_{builtin}")
    if name == "CUSTOM" and code.customCode is not None:
        custom = code.customCode
        return f"CUSTOM:{custom.decode() if isinstance(custom, bytes) else custom}"
    return name


def tensor_quant(sub: Any, index: int) -> dict[str, Any]:
    """Name, dtype, shape, scale(s) and zero point(s) of one tensor."""
    t = sub.tensors[index]
    q = t.quantization
    return {
        "name": t.name.decode() if isinstance(t.name, bytes) else str(t.name),
        "dtype": enum_names("TensorType").get(t.type, str(t.type)),
        "shape": [int(s) for s in (t.shape if t.shape is not None else [])],
        "scale": np.asarray(q.scale if q is not None and q.scale is not None else [], np.float32),
        "zero_point": np.asarray(
            q.zeroPoint if q is not None and q.zeroPoint is not None else [], np.int64
        ),
        "quantized_dimension": int(q.quantizedDimension) if q is not None else 0,
    }


def tflite_ops(path: str | Path) -> list[str]:
    """Operator names of the main subgraph, in execution order."""
    model = read_model(path)
    return [op_name(model, op) for op in model.subgraphs[0].operators]


def scales_of_tflite(path: str | Path) -> dict[str, Any]:
    """Quantisation of the input, the output and every weight tensor (op order) of a .tflite."""
    model = read_model(path)
    sub = model.subgraphs[0]
    ops = [op_name(model, op) for op in sub.operators]
    weights = []
    for name, op in zip(ops, sub.operators, strict=True):
        if name in WEIGHT_OPS:
            w = tensor_quant(sub, int(op.inputs[1]))
            weights.append({"op": WEIGHT_OPS[name], "tflite_op": name, **w})
    return {
        "input": tensor_quant(sub, int(sub.inputs[0])),
        "output": tensor_quant(sub, int(sub.outputs[0])),
        "weights": weights,
        "ops": ops,
    }
