"""Latency ESTIMATE: per-op-type instructions (measured) x cycles per instruction (published).

How an operator's cycles are estimated:

Instructions (``INSTRUCTION_MODEL``):
    fitted per op type and CMSIS-NN code path (``op_key``) on the instructions TFLite Micro +
    CMSIS-NN executed for every zoo student and the two MLPerf Tiny models, built for a
    Cortex-M4 and counted in QEMU (``ppgedge profile --measure``; benchmarks/measure.py fits
    them and reports leave-one-model-out errors per op type).
Cycles per instruction (``INSTRUCTION_CPI``):
    published MLPerf Tiny v1.0 KWS cycles per board / KWS instructions, per core. QEMU does not
    model time; this is the link from instructions to time, and it carries the boards' memory
    wait states and the difference between microTVM's and TFLite Micro's glue code.
Op types never measured fall back to the older rates below (MAC rates calibrated on the same
published points, element priors), which remain documented as they were:


Calibrated (from MLPerf Tiny v1.0 published medians, ``PUBLISHED`` below):
    ``conv_cpm`` (cycles per MAC of CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV) and ``fc_cpm``
    (cycles per MAC of FULLY_CONNECTED, BATCH_MATMUL), per core. For the Cortex-M4F
    (NUCLEO-L4R5ZI, 120 MHz) and the Cortex-M33 (nRF5340 application core, 128 MHz) each is
    solved from two equations: the anomaly-detection autoencoder (``ad01_int8.tflite``: 10
    FULLY_CONNECTED layers, 264,192 MACs) fixes ``fc_cpm``; the keyword-spotting DS-CNN
    (``kws_ref_model.tflite``: CONV_2D and DEPTHWISE_CONV_2D, 2,656,000 of its 2,656,768 MACs)
    then fixes ``conv_cpm`` after its small FC and the prior costs below are subtracted.
    Both runs are microTVM + CMSIS-NN (OctoML's submission): the closest published
    CMSIS-NN numbers for these boards, not TFLite Micro itself.
Scaled (one published ratio):
    Cortex-M7: every M4 coefficient times 0.5264, the ratio of KWS cycles on an STM32H7A3
    (Cortex-M7, 280 MHz, 60.988 inf/s) to KWS cycles on the NUCLEO-L4R5ZI (13.759 inf/s),
    both with X-CUBE-AI 8.0 (same runtime, so the ratio isolates the core and memory system).
    ``speed`` is this ratio for each core (M33: its KWS cycles over the M4's, 0.8131); it
    scales the prior costs, which were written for the M4.
Priors (written from the kernels' inner loops, NOT calibrated; their band is 0.5x-2x):
    ``OP_OVERHEAD`` 1,000 cycles per operator (interpreter dispatch, kernel setup),
    ``REQUANT`` 10 cycles per output element of a MAC op (CMSIS-NN's requantisation: a
    doubling high multiply, rounding shift, offset, clamp, store), and ``ELEMENT_CYCLES`` per
    element for every other op.
Band:
    0.73x-1.37x on the calibrated part. 0.728 is X-CUBE-AI's KWS time over microTVM's on the
    same NUCLEO-L4R5ZI (72.68 / 99.81 ms): two runtimes on one board differ this much, and which
    side TFLite Micro + CMSIS-NN falls on for a given model is not known, so the band is that
    factor both ways (1 / 0.728 = 1.37).
Floor:
    ``peak_macs_per_cycle``: 2 on all three cores. The DSP extension's SMLAD does two 16-bit
    MACs per cycle (int8 operands are widened first, so CMSIS-NN reaches ~1). The M7 issues one
    SMLAD per cycle too; its dual issue pairs the loads with it rather than adding a second
    MAC, which is why it gets closer to the same peak, not a higher one.

``calibrate`` re-derives the calibrated numbers from the two model files;
``benchmarks/profile_targets.py`` runs it and reports the fit and its cross-checks.
"""

from __future__ import annotations

from dataclasses import dataclass

from ppgedge.errors import PpgedgeError
from ppgedge.profile.layers import LayerFacts

BAND_LOW = 0.728
BAND_HIGH = 1 / 0.728
PRIOR_LOW, PRIOR_HIGH = 0.5, 2.0
OP_OVERHEAD = 1000.0
REQUANT = 10.0

CONV_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"})
FC_OPS = frozenset({"FULLY_CONNECTED", "BATCH_MATMUL"})

# Cortex-M4 cycles per element for ops without MACs, and which side's elements count.
ELEMENT_CYCLES: dict[str, tuple[float, str]] = {
    "ADD": (20, "output"), "SUB": (20, "output"), "MUL": (20, "output"),
    "SQUARED_DIFFERENCE": (25, "output"), "MAXIMUM": (3, "output"), "MINIMUM": (3, "output"),
    "AVERAGE_POOL_2D": (2, "input"), "MAX_POOL_2D": (1.5, "input"), "L2_POOL_2D": (6, "input"),
    "MEAN": (4, "input"), "SUM": (3, "input"), "REDUCE_MAX": (2, "input"),
    "REDUCE_MIN": (2, "input"),
    "SOFTMAX": (40, "output"), "LOG_SOFTMAX": (50, "output"), "LOGISTIC": (20, "output"),
    "TANH": (20, "output"), "HARD_SWISH": (12, "output"), "ELU": (20, "output"),
    "RELU": (2, "output"), "RELU6": (2, "output"), "LEAKY_RELU": (6, "output"),
    "PRELU": (8, "output"),
    "QUANTIZE": (15, "output"), "DEQUANTIZE": (15, "output"),
    "RESHAPE": (0.5, "output"), "SQUEEZE": (0.5, "output"), "EXPAND_DIMS": (0.5, "output"),
    "PAD": (2, "output"), "PADV2": (2, "output"), "MIRROR_PAD": (4, "output"),
    "CONCATENATION": (1.5, "output"), "SPLIT": (1.5, "output"), "SPLIT_V": (1.5, "output"),
    "PACK": (1.5, "output"), "UNPACK": (1.5, "output"), "SLICE": (2, "output"),
    "STRIDED_SLICE": (3, "output"), "TRANSPOSE": (4, "output"), "GATHER": (3, "output"),
    "RESIZE_NEAREST_NEIGHBOR": (4, "output"), "RESIZE_BILINEAR": (12, "output"),
}  # fmt: skip
ELEMENT_DEFAULT = (10.0, "output")


@dataclass(frozen=True)
class CoreModel:
    """Cycle coefficients of one core family (see the module docstring for their origin)."""

    family: str
    conv_cpm: float
    fc_cpm: float
    speed: float
    peak_macs_per_cycle: float
    basis: str


CORES: dict[str, CoreModel] = {
    "cortex-m4": CoreModel(
        "cortex-m4", conv_cpm=4.226, fc_cpm=3.807, speed=1.0, peak_macs_per_cycle=2.0,
        basis="calibrated: MLPerf Tiny v1.0 KWS + AD on NUCLEO-L4R5ZI (microTVM + CMSIS-NN)",
    ),
    "cortex-m33": CoreModel(
        "cortex-m33", conv_cpm=3.436, fc_cpm=2.954, speed=0.8131, peak_macs_per_cycle=2.0,
        basis="calibrated: MLPerf Tiny v1.0 KWS + AD on nRF5340 DK (microTVM + CMSIS-NN)",
    ),
    "cortex-m7": CoreModel(
        "cortex-m7", conv_cpm=2.225, fc_cpm=2.004, speed=0.5264, peak_macs_per_cycle=2.0,
        basis="M4 coefficients x 0.5264 (KWS, X-CUBE-AI 8.0: STM32H7A3 vs NUCLEO-L4R5ZI)",
    ),
}  # fmt: skip
CORE_ALIASES = {
    "cortex-m4": "cortex-m4", "cortex-m4f": "cortex-m4",
    "cortex-m33": "cortex-m33", "cortex-m33f": "cortex-m33",
    "cortex-m7": "cortex-m7", "cortex-m7f": "cortex-m7",
}  # fmt: skip


@dataclass(frozen=True)
class Published:
    """One published whole-network measurement used for calibration or checking."""

    model: str
    board: str
    core: str
    clock_mhz: float
    inferences_per_s: float
    runtime: str
    source: str

    @property
    def ms(self) -> float:
        return 1000.0 / self.inferences_per_s

    @property
    def cycles(self) -> float:
        return self.clock_mhz * 1e6 / self.inferences_per_s


_V10 = "MLPerf Tiny v1.0 results, OctoML submission, performance/results.txt (median)"
_XCUBE = "MLPerf Tiny v1.0 results, STMicroelectronics submission (X-CUBE-AI 8.0)"
PUBLISHED: tuple[Published, ...] = (
    Published("kws", "NUCLEO-L4R5ZI", "cortex-m4", 120, 10.019, "microTVM + CMSIS-NN", _V10),
    Published("ad", "NUCLEO-L4R5ZI", "cortex-m4", 120, 116.212, "microTVM + CMSIS-NN", _V10),
    Published("kws", "nRF5340 DK", "cortex-m33", 128, 13.143, "microTVM + CMSIS-NN", _V10),
    Published("ad", "nRF5340 DK", "cortex-m33", 128, 159.579, "microTVM + CMSIS-NN", _V10),
    Published("kws", "NUCLEO-L4R5ZI", "cortex-m4", 120, 13.759, "X-CUBE-AI 8.0", _XCUBE),
    Published("kws", "STM32H7A3", "cortex-m7", 280, 60.988, "X-CUBE-AI 8.0", _XCUBE),
)


def core_model(core: str) -> CoreModel:
    family = CORE_ALIASES.get(core.lower())
    if family is None:
        raise PpgedgeError(
            f"no cycle model for core '{core}'; calibrated cores: {', '.join(sorted(CORE_ALIASES))}"
        )
    return CORES[family]


@dataclass(frozen=True)
class OpCycles:
    """Estimated cycles of one operator: centre and band, split into calibrated and prior."""

    calibrated: float
    prior: float

    @property
    def mid(self) -> float:
        return self.calibrated + self.prior

    @property
    def low(self) -> float:
        return self.calibrated * BAND_LOW + self.prior * PRIOR_LOW

    @property
    def high(self) -> float:
        return self.calibrated * BAND_HIGH + self.prior * PRIOR_HIGH


def prior_cycles(f: LayerFacts) -> float:
    """Cortex-M4 cycles of the uncalibrated parts of one op (overhead, requant, elementwise)."""
    if f.opcode in CONV_OPS or f.opcode in FC_OPS:
        return OP_OVERHEAD + REQUANT * f.output_elements
    per, side = ELEMENT_CYCLES.get(f.opcode, ELEMENT_DEFAULT)
    n = f.input_elements if side == "input" else f.output_elements
    return OP_OVERHEAD + per * n


def op_cycles(f: LayerFacts, model: CoreModel) -> OpCycles:
    """The estimate for one operator on one core: the per-op-type instruction model times the
    core's cycles per instruction where the op type was measured, else the MAC and element
    rates below."""
    instructions = predict_instructions(f, INSTRUCTION_MODEL)
    if instructions is not None:
        return OpCycles(instructions * INSTRUCTION_CPI[model.family].cpi, 0.0)
    if f.opcode in CONV_OPS:
        calibrated = model.conv_cpm * f.macs
    elif f.opcode in FC_OPS:
        calibrated = model.fc_cpm * f.macs
    else:
        calibrated = 0.0
    return OpCycles(calibrated, model.speed * prior_cycles(f))


def floor_cycles(total_macs: int, model: CoreModel) -> float:
    """MACs at the core's peak int8 SIMD rate: no implementation can be faster."""
    return total_macs / model.peak_macs_per_cycle


def calibrate(kws: list[LayerFacts], ad: list[LayerFacts]) -> dict[str, dict[str, float]]:
    """Solve ``fc_cpm`` (from AD) and ``conv_cpm`` (from KWS) for the M4 and M33 points.

    Returns per core: conv_cpm, fc_cpm and speed, the numbers ``CORES`` holds (rounded).
    """
    points = {(p.model, p.core): p for p in PUBLISHED if p.runtime == "microTVM + CMSIS-NN"}
    m4_kws = points[("kws", "cortex-m4")].cycles
    out: dict[str, dict[str, float]] = {}
    for core in ("cortex-m4", "cortex-m33"):
        speed = points[("kws", core)].cycles / m4_kws
        ad_prior = speed * sum(prior_cycles(f) for f in ad)
        ad_macs = sum(f.macs for f in ad if f.opcode in FC_OPS)
        fc_cpm = (points[("ad", core)].cycles - ad_prior) / ad_macs
        kws_fc = fc_cpm * sum(f.macs for f in kws if f.opcode in FC_OPS)
        kws_prior = speed * sum(prior_cycles(f) for f in kws)
        conv_macs = sum(f.macs for f in kws if f.opcode in CONV_OPS)
        conv_cpm = (points[("kws", core)].cycles - kws_fc - kws_prior) / conv_macs
        out[core] = {"conv_cpm": conv_cpm, "fc_cpm": fc_cpm, "speed": speed}
    xcube = {p.core: p.cycles for p in PUBLISHED if p.runtime == "X-CUBE-AI 8.0"}
    ratio = xcube["cortex-m7"] / xcube["cortex-m4"]
    m4 = out["cortex-m4"]
    out["cortex-m7"] = {
        "conv_cpm": m4["conv_cpm"] * ratio,
        "fc_cpm": m4["fc_cpm"] * ratio,
        "speed": ratio,
    }
    return out


@dataclass(frozen=True)
class InstructionCpi:
    """Cycles per executed instruction for turning QEMU's instruction counts into cycles."""

    core: str
    cpi: float
    basis: str


# Instructions per Invoke of the MLPerf Tiny KWS model (kws_ref_model.tflite) that the
# per-op-type model below gives: 7,721,556 (measured in QEMU: 7,698,224 on cortex-m4,
# 7,679,444 on cortex-m33; TFLite Micro + CMSIS-NN by ppgedge.firmware, arm-none-eabi-gcc 12.2).
# Dividing the published cycles by the model's own count keeps profile's KWS estimate on the
# published figure.
KWS_INSTRUCTIONS = 7_721_556


def calibrate_cpi(kws_instructions: float = KWS_INSTRUCTIONS) -> dict[str, float]:
    """CPI per core = published KWS cycles (microTVM + CMSIS-NN, ``PUBLISHED``) / KWS
    instructions; Cortex-M7 = the M4's x the X-CUBE-AI M7/M4 KWS cycle ratio (same runtime on
    both boards), assuming the M7 executes as many instructions as the M4."""
    points = {(p.model, p.core): p for p in PUBLISHED if p.runtime == "microTVM + CMSIS-NN"}
    out = {c: points[("kws", c)].cycles / kws_instructions for c in ("cortex-m4", "cortex-m33")}
    xcube = {p.core: p.cycles for p in PUBLISHED if p.runtime == "X-CUBE-AI 8.0"}
    out["cortex-m7"] = out["cortex-m4"] * xcube["cortex-m7"] / xcube["cortex-m4"]
    return out


_CPI = calibrate_cpi()
_CPI_BASIS = {
    "cortex-m4": "published MLPerf Tiny v1.0 KWS cycles on NUCLEO-L4R5ZI (120 MHz, microTVM + "
    "CMSIS-NN) / KWS instructions (TFLite Micro + CMSIS-NN in QEMU); held out: AD 11 % low",
    "cortex-m33": "published MLPerf Tiny v1.0 KWS cycles on nRF5340 DK (128 MHz, microTVM + "
    "CMSIS-NN) / KWS instructions (TFLite Micro + CMSIS-NN in QEMU); held out: AD 7 % low",
    "cortex-m7": "Cortex-M4 CPI x 0.5264, the X-CUBE-AI 8.0 KWS cycle ratio STM32H7A3 / "
    "NUCLEO-L4R5ZI",
}
INSTRUCTION_CPI: dict[str, InstructionCpi] = {
    core: InstructionCpi(core, _CPI[core], _CPI_BASIS[core]) for core in _CPI_BASIS
}


def instruction_cpi(core: str) -> InstructionCpi:
    """The stated cycles-per-instruction figure of a core family (an ESTIMATE)."""
    return INSTRUCTION_CPI[core_model(core).family]


# ------------------------------------------------------------------ per-op-type instructions
# A layer's executed instructions (TFLite Micro + CMSIS-NN, measured in QEMU by
# ``ppgedge profile --measure``) modelled per operator type as
#     instructions = fixed + per_mac * MACs + per_out * output elements + per_in * input elements
#                    + per_window * kernel-window elements (output positions x kernel taps)
# fitted with non-negative least squares (``fit_instruction_model``) by benchmarks/measure.py.
# The window term is what CMSIS-NN spends gathering each output's input window (im2col, the
# depthwise column buffer), independent of the output channels.
FEATURES = ("fixed", "per_mac", "per_out", "per_in", "per_window")


def layer_features(f: LayerFacts) -> tuple[float, ...]:
    g = f.geometry
    window = f.macs / g.out_c if g is not None and g.out_c else 0.0
    return (1.0, float(f.macs), float(f.output_elements), float(f.input_elements), window)


def op_key(f: LayerFacts) -> str:
    """The op type, refined by the CMSIS-NN code path its geometry selects (the wrappers
    dispatch 1x1, 1xN and 3x3 depthwise kernels to different, differently fast loops)."""
    g = f.geometry
    if g is None:
        return f.opcode
    if f.opcode == "CONV_2D":
        if g.k_h == 1 and g.k_w == 1:
            return "CONV_2D:1x1"
        if g.in_h == 1 and g.k_h == 1:
            return "CONV_2D:1xN"
        return "CONV_2D:im2col"
    if f.opcode == "DEPTHWISE_CONV_2D":
        return "DEPTHWISE_CONV_2D:3x3" if (g.k_h, g.k_w) == (3, 3) else "DEPTHWISE_CONV_2D:other"
    return f.opcode


def fit_instruction_model(
    samples: list[tuple[LayerFacts, float]],
) -> dict[str, dict[str, float]]:
    """Per op type and per code path (``op_key``), the non-negative coefficients that best
    reproduce the measured instruction counts of ``samples`` (layer, instructions); a type with
    one distinct layer gets only a per-element (or per-MAC) rate through the origin."""
    import numpy as np
    from scipy.optimize import nnls

    by_type: dict[str, list[tuple[LayerFacts, float]]] = {}
    for f, n in samples:
        by_type.setdefault(f.opcode, []).append((f, n))
        if op_key(f) != f.opcode:
            by_type.setdefault(op_key(f), []).append((f, n))
    out: dict[str, dict[str, float]] = {}
    for op, rows in sorted(by_type.items()):
        a = np.array([layer_features(f) for f, _ in rows])
        b = np.array([n for _, n in rows])
        distinct = len({tuple(r) for r in a.tolist()})
        if distinct < 2:  # one shape: explain it by its main work alone
            k = 1 if a[0, 1] > 0 else 2
            mask = np.zeros(len(FEATURES), bool)
            mask[k] = True
        else:
            mask = np.ones(len(FEATURES), bool)
        scale = np.maximum(np.abs(a[:, mask]).max(axis=0), 1.0)  # conditioning
        coef, _ = nnls(a[:, mask] / scale, b)
        full = np.zeros(len(FEATURES))
        full[mask] = coef / scale
        out[op] = {name: float(c) for name, c in zip(FEATURES, full, strict=True)}
        out[op]["layers"] = float(len(rows))
    return out


def predict_instructions(f: LayerFacts, model: dict[str, dict[str, float]]) -> float | None:
    """Instructions of one layer from a fitted model (its code path's coefficients, else its
    op type's); None for an op type the model has not seen."""
    c = model.get(op_key(f)) or model.get(f.opcode)
    if c is None:
        return None
    return sum(c[name] * x for name, x in zip(FEATURES, layer_features(f), strict=True))


# Fitted by benchmarks/measure.py (``fit_instruction_model``) on the cortex-m4 instruction
# counts of every zoo student (int8 by PTQ), three depthwise-separable knob variants and both
# MLPerf Tiny models: per key, (fixed, per MAC, per output element, per input element, per
# kernel-window element). Leave-one-model-out errors are in benchmarks/results/measure.md; the
# 3x3 depthwise path has one model (KWS) behind it.
_FITTED = {
    "ADD": (759.75, 0.0, 81.5312, 0.0, 0.0),  # 12 layers
    "AVERAGE_POOL_2D": (3528.7339, 0.0, 31.0, 5.6868, 0.0),  # 4 layers
    "CONV_2D": (135.7604, 1.186, 50.9571, 0.0, 15.0269),  # 68 layers
    "CONV_2D:1x1": (11335.8635, 1.564, 32.8768, 0.0, 0.0),  # 34 layers
    "CONV_2D:1xN": (6361.137, 1.4144, 54.8679, 0.0, 10.7541),  # 33 layers
    "CONV_2D:im2col": (0.0, 3.4951, 0.0, 0.0, 0.0),  # 1 layers
    "DEPTHWISE_CONV_2D": (44936.2282, 5.5476, 0.0, 13.4074, 16.8074),  # 26 layers
    "DEPTHWISE_CONV_2D:3x3": (0.0, 7.797, 0.0, 0.0, 0.0),  # 4 layers
    "DEPTHWISE_CONV_2D:other": (118.5538, 6.9046, 45.3841, 0.4166, 45.3717),  # 22 layers
    "FULLY_CONNECTED": (919.5922, 1.8736, 51.6184, 0.0, 0.0),  # 27 layers
    "MEAN": (1296.6535, 0.0, 37.7136, 129.1828, 0.0),  # 9 layers
    "PAD": (441.7054, 0.0, 0.4344, 0.0987, 0.0),  # 30 layers
    "RESHAPE": (183.0, 0.0, 0.5312, 0.0, 0.0),  # 4 layers
    "SOFTMAX": (0.0, 0.0, 242.75, 0.0, 0.0),  # 1 layers
}
INSTRUCTION_MODEL: dict[str, dict[str, float]] = {
    key: dict(zip(FEATURES, values, strict=True)) for key, values in _FITTED.items()
}
