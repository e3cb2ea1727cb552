"""What the emulated firmware is fed, and what the host computes from the same inputs.

A ppgedge bundle gets raw sensor windows (from a dataset, else seeded Gaussian noise) and runs
its own C preprocessing and decoding; a foreign model gets seeded random int8 input tensors.
The reference is the TFLite Micro Python runtime (the host build of the same interpreter)
invoked on the exact int8 tensors the device produced, so any difference is the device's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ppgedge.errors import PpgedgeError


@dataclass(frozen=True)
class Inputs:
    """Items written to the harness (float32 raw windows or int8 tensors) and their origin."""

    items: np.ndarray
    origin: str
    raw: bool

    @property
    def item_bytes(self) -> int:
        return int(self.items[0].nbytes)


def dataset_windows(data: str | Path, fmt, n: int) -> Inputs:
    """The first ``n`` windows of a dataset, channels in the bundle's order, channel-major."""
    from ppgedge.data.format import Dataset

    ds = Dataset(data)
    if ds.fmt.sample_rate_hz != fmt.sample_rate_hz or ds.fmt.window_samples != fmt.window_samples:
        raise PpgedgeError(
            f"{data}: {ds.fmt.sample_rate_hz:g} Hz x {ds.fmt.window_samples} samples, the model "
            f"expects {fmt.sample_rate_hz:g} Hz x {fmt.window_samples}"
        )
    idx = ds.channel_index(list(fmt.channels))
    x = np.ascontiguousarray(np.asarray(ds.x[:n])[:, idx, :], dtype="<f4")
    if len(x) == 0:
        raise PpgedgeError(f"{data}: no windows")
    return Inputs(x, f"{len(x)} windows of {Path(data).name}", True)


def noise_windows(fmt, n: int, seed: int = 0) -> Inputs:
    rng = np.random.default_rng(seed)
    shape = (n, len(fmt.channels), fmt.window_samples)
    x = rng.standard_normal(shape).astype("<f4")
    return Inputs(x, f"{n} random Gaussian windows (seed {seed}; no --data given)", True)


def random_int8(input_shape: list[int], n: int, seed: int = 0) -> Inputs:
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(n, *input_shape[1:]), dtype=np.int8)
    return Inputs(x, f"{n} random int8 input tensors (seed {seed})", False)


def python_inputs(raw: np.ndarray, tflite: Path) -> np.ndarray:
    """The int8 input tensors ppgedge's Python pipeline makes of raw windows (z-score, then
    quantisation with round half to even), flattened per window."""
    from ppgedge.compress.runtimes import layout_windows, quantize
    from ppgedge.compress.tflite_file import scales_of_tflite
    from ppgedge.data.preprocess import zscore_numpy

    q = scales_of_tflite(tflite)["input"]
    x = layout_windows(zscore_numpy(raw), list(q["shape"]))
    x = quantize(x, float(q["scale"][0]), int(q["zero_point"][0]))
    return x.reshape(len(raw), -1)


def host_outputs(tflite: Path, inputs: np.ndarray) -> np.ndarray:
    """Outputs of the TFLite Micro Python runtime for int8 input tensors (flattened)."""
    from ppgedge.compress.runtimes import quiet_stderr

    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:  # pragma: no cover - a declared dependency
        raise PpgedgeError(
            "the TFLite Micro Python runtime (tflite-micro) is not installed"
        ) from None
    with quiet_stderr():
        interp = runtime.Interpreter.from_file(str(tflite))
    shape = [int(s) for s in interp.get_input_details(0)["shape"]]
    outs = []
    for x in inputs:
        interp.set_input(x.reshape(shape).astype(np.int8), 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0)).reshape(-1))
    return np.stack(outs)
