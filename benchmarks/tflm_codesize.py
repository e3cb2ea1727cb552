"""Measure TFLite Micro + CMSIS-NN code size per operator for a Cortex-M core.

This is where the numbers in ``src/ppgedge/profile/codesize.py`` come from. It compiles the
TFLite Micro framework (``-Os``), its kernels with the CMSIS-NN versions where they exist
(``-O2``) and CMSIS-NN (``-O2``) with ``arm-none-eabi-gcc``, the flags of TFLite Micro's
Makefile (``-DTF_LITE_STATIC_MEMORY``, ``-DNDEBUG`` as in its ``release_with_logs`` build,
``KERNELS_OPTIMIZED_FOR_SPEED``), then links small programs with ``--gc-sections``:

* ``empty``: nothing; ``base``: a ``MicroInterpreter`` with no kernel registered (the
  framework, as TFLite Micro's own ``memory_footprint`` example measures it);
* one program per operator: ``base`` plus that kernel, registered the int8-only way
  (``Register_CONV_2D_INT8()`` ...) where TFLite Micro offers one, else the default way;
* the op sets of two models, to see how much the per-op sums overstate (shared helpers).

Each program's sized symbols (``nm -S``) are recorded. An op's code is the symbols whose names
``base`` lacks plus the growth of framework functions it changes (the op resolver); a model's
kernel code is the size of the union of its ops' symbols (helpers shared by several kernels count
once) plus their growth. ``symbol_sizes`` / ``op_symbols`` / ``op_growth`` are that table.

Flash = ``text + data`` of the linked ELF. The core runtime is ``base - empty``; an op costs
``with op - base``. Printing (DebugLog) is stubbed out: platform logging is not counted.

The bundle's application (its ``main.cc`` with MicroPrintf logging, the C preprocessing and
decoding, startup, and what only they pull from newlib) is measured too, as ``bundle_app``: the
bundle's firmware image (``ppgedge.firmware.images``) minus the same program with the bundle's
model array and op resolver but nothing else (the driver above, logging stubbed). ``profile``
adds it to every model's flash, so its figure is that of a linked bundle.

Compiling is ``ppgedge.firmware.build.Runtime`` (the flags and the object cache that
``ppgedge profile --measure`` uses). Needs a source tree laid out like
``../shared/vendor/tflm-src``. Takes about 5 min per core on 2 cores the first time.

Run: ``.venv/bin/python benchmarks/tflm_codesize.py --tflm-src ../shared/vendor/tflm-src
--bundle DIR [--core cortex-m4]``; prints a JSON table (``--bundle``: a ppgedge bundle
directory, e.g. ``runs/default/export/tflm``).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from ppgedge.firmware.boards import BOARDS, board_for
from ppgedge.firmware.build import BUILD_FLAGS, LINK, Runtime, link, require_tools
from ppgedge.firmware.images import ModelFiles, build_images
from ppgedge.firmware.sources import locate

# builtin op -> (MicroMutableOpResolver method, int8-only registration or None)
OPS = {
    "CONV_2D": ("AddConv2D", "Register_CONV_2D_INT8"),
    "DEPTHWISE_CONV_2D": ("AddDepthwiseConv2D", "Register_DEPTHWISE_CONV_2D_INT8"),
    "FULLY_CONNECTED": ("AddFullyConnected", "Register_FULLY_CONNECTED_INT8"),
    "TRANSPOSE_CONV": ("AddTransposeConv", "Register_TRANSPOSE_CONV_INT8"),
    "BATCH_MATMUL": ("AddBatchMatMul", "Register_BATCH_MATMUL_INT8"),
    "AVERAGE_POOL_2D": ("AddAveragePool2D", "Register_AVERAGE_POOL_2D_INT8"),
    "MAX_POOL_2D": ("AddMaxPool2D", "Register_MAX_POOL_2D_INT8"),
    "SOFTMAX": ("AddSoftmax", "Register_SOFTMAX_INT8"),
    "ADD": ("AddAdd", "Register_ADD_INT8"),
    "MUL": ("AddMul", "Register_MUL_INT8"),
    "PAD": ("AddPad", "Register_PAD_INT8"),
    "TRANSPOSE": ("AddTranspose", "Register_TRANSPOSE_INT8"),
    "MAXIMUM": ("AddMaximum", "Register_MAXIMUM_INT8"),
    "MINIMUM": ("AddMinimum", "Register_MINIMUM_INT8"),
    "SUB": ("AddSub", None),
    "MEAN": ("AddMean", None),
    "SUM": ("AddSum", None),
    "REDUCE_MAX": ("AddReduceMax", None),
    "RESHAPE": ("AddReshape", None),
    "SQUEEZE": ("AddSqueeze", None),
    "EXPAND_DIMS": ("AddExpandDims", None),
    "QUANTIZE": ("AddQuantize", None),
    "DEQUANTIZE": ("AddDequantize", None),
    "RELU": ("AddRelu", None),
    "RELU6": ("AddRelu6", None),
    "LEAKY_RELU": ("AddLeakyRelu", None),
    "HARD_SWISH": ("AddHardSwish", None),
    "LOGISTIC": ("AddLogistic", None),
    "TANH": ("AddTanh", None),
    "CONCATENATION": ("AddConcatenation", None),
    "STRIDED_SLICE": ("AddStridedSlice", None),
    "SLICE": ("AddSlice", None),
    "SPLIT": ("AddSplit", None),
    "PACK": ("AddPack", None),
    "UNPACK": ("AddUnpack", None),
    "GATHER": ("AddGather", None),
    "PADV2": ("AddPadV2", None),
    "MIRROR_PAD": ("AddMirrorPad", None),
    "RESIZE_NEAREST_NEIGHBOR": ("AddResizeNearestNeighbor", None),
    "PRELU": ("AddPrelu", None),
    "L2_POOL_2D": ("AddL2Pool2D", None),
    "LOG_SOFTMAX": ("AddLogSoftmax", None),
    "ELU": ("AddElu", None),
    "ARG_MAX": ("AddArgMax", None),
    "SQUARED_DIFFERENCE": ("AddSquaredDifference", None),
}
MODEL_SETS = {
    "kws_ref_model": [
        "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX",
    ],
    "ppgedge resnet": ["PAD", "CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED"],
}  # fmt: skip

# What every measured program links besides TFLite Micro: no C++ runtime, no logging (printing
# is platform code, not counted). Braces doubled: the drivers are str.format templates.
RUNTIME_STUBS = """
extern "C" void __cxa_pure_virtual() {{ while (1) {{}} }}
void operator delete(void*, unsigned int) noexcept {{}}
void operator delete(void*) noexcept {{}}
extern "C" void DebugLog(const char*, va_list) {{}}
extern "C" int DebugVsnprintf(char* b, size_t n, const char*, va_list) {{
  if (n) b[0] = 0;
  return 0;
}}
"""

DRIVER = (
    """
#include <new>
#include <cstdint>
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/micro/kernels/micro_ops.h"
#include "tensorflow/lite/micro/kernels/add.h"
#include "tensorflow/lite/micro/kernels/batch_matmul.h"
#include "tensorflow/lite/micro/kernels/conv.h"
#include "tensorflow/lite/micro/kernels/depthwise_conv.h"
#include "tensorflow/lite/micro/kernels/fully_connected.h"
#include "tensorflow/lite/micro/kernels/maximum_minimum.h"
#include "tensorflow/lite/micro/kernels/mul.h"
#include "tensorflow/lite/micro/kernels/pad.h"
#include "tensorflow/lite/micro/kernels/pooling.h"
#include "tensorflow/lite/micro/kernels/softmax.h"
#include "tensorflow/lite/micro/kernels/transpose.h"
#include "tensorflow/lite/micro/kernels/transpose_conv.h"
extern "C" const unsigned char g_model[64] = {{0}};
alignas(16) static uint8_t arena[4096];
alignas(16) static uint8_t resolver_buf[sizeof(tflite::MicroMutableOpResolver<{n}>)];
alignas(16) static uint8_t interp_buf[sizeof(tflite::MicroInterpreter)];
extern "C" int entry(void) {{
{early}
  auto* r = new (resolver_buf) tflite::MicroMutableOpResolver<{n}>();
{adds}
  auto* i = new (interp_buf)
      tflite::MicroInterpreter(tflite::GetModel(g_model), *r, arena, sizeof(arena));
  if (i->AllocateTensors() != kTfLiteOk) return 1;
  return i->Invoke() == kTfLiteOk ? 0 : 2;
}}
"""
    + RUNTIME_STUBS
)


def sh(cmd: list[str]) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"{' '.join(cmd[:3])}...: {res.stderr[-2000:]}")
    return res.stdout


def compile_all(rt: Runtime) -> Path:
    """Framework and every kernel (CMSIS-NN where it has one), as TFLite Micro builds them."""
    lib, compiled = rt.library([], every_kernel=True)
    print(f"runtime: {compiled} objects compiled, {lib}", file=sys.stderr)
    return lib


def flash_of(rt: Runtime, build: Path, lib: Path, name: str, ops: list[str]) -> int:
    adds = []
    for op in ops:
        method, int8 = OPS[op]
        adds.append(f"  r->{method}({'tflite::' + int8 + '()' if int8 else ''});")
    src = build / f"drv_{name}.cc"
    src.write_text(DRIVER.format(n=max(len(ops), 1), adds="\n".join(adds),
                                 early="  return 0;" if name == "empty" else ""))  # fmt: skip
    obj, elf = src.with_suffix(".o"), src.with_suffix(".elf")
    sh(rt.compile_cmd(src, obj, "c++", "-Os"))
    sh(["arm-none-eabi-g++", *rt.board.flags, *LINK, "--specs=nosys.specs", "-Wl,-e,entry",
        str(obj), str(lib), "-o", str(elf)])  # fmt: skip
    text, data = sh(["arm-none-eabi-size", str(elf)]).splitlines()[1].split()[:2]
    SYMBOLS[name] = symbols(elf)
    return int(text) + int(data)


SYMBOLS: dict[str, dict[tuple[str, int, int], int]] = {}


def symbols(elf: Path) -> dict[tuple[str, int, int], int]:
    """Sized code and data symbols of a linked program, keyed (name, size, occurrence)."""
    seen: dict[tuple[str, int], int] = {}
    out = {}
    for line in sh(["arm-none-eabi-nm", "-S", "--defined-only", str(elf)]).splitlines():
        parts = line.split()
        if len(parts) != 4 or parts[2] not in "TtDdRrWwVv":
            continue
        size, name = int(parts[1], 16), parts[3]
        k = seen.get((name, size), 0)
        seen[(name, size)] = k + 1
        out[(name, size, k)] = size
    return out


APP_DRIVER = (
    """
#include <cstdint>
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "{id}_model_data.h"
#include "{id}_op_resolver.h"
alignas(16) static uint8_t arena[{arena}];
int main() {{
  {id}_op_resolver r;
  if ({id}_register_ops(r) != kTfLiteOk) return 1;
  tflite::MicroInterpreter i(tflite::GetModel({id}_model_data), r, arena, sizeof(arena));
  if (i.AllocateTensors() != kTfLiteOk) return 1;
  return i.Invoke() == kTfLiteOk ? 0 : 2;
}}
"""
    + RUNTIME_STUBS
)


def bundle_app(rt: Runtime, lib: Path, bundle: Path, build: Path) -> dict[str, object]:
    """Flash the bundle's application adds: its firmware image minus a program with the same
    model array, op resolver and arena and nothing else (logging stubbed, as above)."""
    man = json.loads((bundle / "manifest.json").read_text())
    ident, arena = man["identifier"], int(man["arena"]["total"])
    files = ModelFiles(bundle, ident, True, bundle / f"{ident}.tflite")
    ops = sorted(set(man["model"]["ops"]))
    images = build_images(
        rt, files, ops, build / "bundle", firmware_arena=arena, harness_arena=arena * 2,
        item_bytes=4 * len(man["data_format"]["channels"]) * files_window(man),
    )  # fmt: skip
    drv = build / "bundle" / "app_driver.cc"
    drv.write_text(APP_DRIVER.format(id=ident, arena=arena))
    objs = [
        build / "bundle" / f"{ident}_model_data.c.o",
        build / "bundle" / "startup.o",
    ]
    obj = drv.with_suffix(".o")
    sh(rt.compile_cmd(drv, obj, "c++", "-Os", extra=[f"-I{bundle}"]))
    script = build / "bundle" / "link.ld"
    plain = link(rt, [obj, *objs], lib, script, build / "bundle" / "driver.elf", semihosting=False)
    return {
        "bytes": images.firmware.flash - plain.flash,
        "bundle": man["name"],
        "ops": ops,
        "firmware_image": images.firmware.flash,
        "same_model_without_app": plain.flash,
    }


def files_window(man: dict) -> int:
    fmt = man["data_format"]
    return round(fmt["sample_rate_hz"] * fmt["window_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tflm-src", type=Path, required=True)
    ap.add_argument("--bundle", type=Path, required=True, help="a ppgedge bundle directory")
    ap.add_argument("--core", choices=sorted(BOARDS), default="cortex-m4")
    ap.add_argument("--jobs", type=int, default=0)
    ap.add_argument("--build", type=Path, default=Path("benchmarks/out/tflm_codesize"))
    args = ap.parse_args()
    rt = Runtime(locate(args.tflm_src), board_for(args.core), require_tools(), jobs=args.jobs)
    build = args.build / args.core
    build.mkdir(parents=True, exist_ok=True)
    lib = compile_all(rt)
    empty = flash_of(rt, build, lib, "empty", [])
    base = flash_of(rt, build, lib, "base", [])
    per_op = {op: flash_of(rt, build, lib, op.lower(), [op]) - base for op in OPS}
    default_reg = {}
    for op, (method, int8) in OPS.items():
        if int8:
            saved = OPS[op]
            OPS[op] = (method, None)
            default_reg[op] = flash_of(rt, build, lib, op.lower() + "_all", [op]) - base
            OPS[op] = saved
    # Symbols each op adds to the framework (names the framework lacks: kernel code), and the
    # growth of framework functions it changes (the op resolver): a model's kernel code is the
    # union of its ops' added symbols plus the sum of their growth.
    base_syms = SYMBOLS["base"]
    base_names = {key[0] for key in base_syms}
    base_by_name: dict[str, int] = {}
    for key, size in base_syms.items():
        base_by_name[key[0]] = base_by_name.get(key[0], 0) + size
    ids: dict[tuple[str, int, int], int] = {}
    op_symbols, op_growth = {}, {}
    for op in OPS:
        own = SYMBOLS[op.lower()]
        added = [key for key in own if key[0] not in base_names]
        op_symbols[op] = sorted(ids.setdefault(key, len(ids)) for key in added)
        grown: dict[str, int] = {}
        for key, size in own.items():
            if key[0] in base_names:
                grown[key[0]] = grown.get(key[0], 0) + size
        op_growth[op] = sum(grown[n] - base_by_name[n] for n in grown)
    sizes = [0] * len(ids)
    for key, i in ids.items():
        sizes[i] = key[1]
    sets = {}
    for name, ops in MODEL_SETS.items():
        together = flash_of(rt, build, lib, re.sub(r"\W", "_", name), ops) - base
        union = set().union(*(op_symbols[o] for o in ops))
        sets[name] = {
            "ops": ops,
            "together": together,
            "sum_of_ops": sum(per_op[o] for o in ops),
            "union_of_symbols": sum(sizes[i] for i in union) + sum(op_growth[o] for o in ops),
        }
    app = bundle_app(rt, lib, args.bundle, build)
    src = locate(args.tflm_src)
    print(json.dumps({"core": args.core, "compiler": rt.compiler, "sources_sha256": src.digest,
                      "flags": BUILD_FLAGS, "bundle_app": app, "framework": base - empty,
                      "per_op_int8": per_op, "per_op_default_registration": default_reg,
                      "model_sets": sets, "symbol_sizes": sizes,
                      "op_symbols": op_symbols, "op_growth": op_growth}))  # fmt: skip


if __name__ == "__main__":
    main()
