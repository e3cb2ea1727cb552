"""The firmware bundle's C tracker: ``<id>_tracker.h`` / ``<id>_tracker.c`` from the prior.

The integer costs are :meth:`TransitionPrior.int_costs` at the int8 output scale, written
into the C source, so the C filter and :func:`ppgedge.models.tracker.filter_sequence` on the
same int8 logits compute the same numbers.
"""

from __future__ import annotations

import string
from importlib import resources

from ppgedge import __version__
from ppgedge.data.format import BPM_MIN
from ppgedge.export.bundle import TEMPLATES, _comment_safe, c_identifier
from ppgedge.models.tracker import FLOOR, N_CLASSES, PEAK_HALF_WIDTH, TransitionPrior

STATE_BYTES = 4 * N_CLASSES + 4  # int32 score[180] + int32 started (asserted <= 1 KB in C)


def main_fields(ident: str | None, val_decoder: str | None) -> dict[str, str]:
    """The bundle's ``main.cc`` lines that run the tracker after each window (empty strings
    when the bundle has no tracker, ``ident`` None): the example firmware then reports what
    the deployed decoder reports, and its linked size includes the tracker."""
    if ident is None:
        return dict.fromkeys(("tracker_include", "tracker_state", "tracker_reset",
                              "tracker_update"), "")  # fmt: skip
    big = ident.upper()
    if val_decoder == "tracked":
        chosen = "the validation subjects chose it"
    elif val_decoder:
        chosen = f"the validation subjects chose the per-window decoder ({val_decoder})"
    else:
        chosen = "no validation choice recorded"
    return {
        "tracker_include": f'#include "{ident}_tracker.h"\n',
        "tracker_state": (
            f"\n// The temporal tracker's state ({STATE_BYTES} B): one per sensor stream.\n"
            f"{ident}_tracker_t g_tracker;\n"
        ),
        "tracker_reset": (
            "  // Reset at start-up, at a new recording and after any window that is not one\n"
            "  // hop after the previous one (a dropped window).\n"
            f"  {ident}_tracker_reset(&g_tracker);\n"
        ),
        "tracker_update": (
            f"\n  // Per window, one hop apart: the tracked heart rate ({chosen}); a small\n"
            "  // margin (logit quanta) means two heart rates are nearly equally likely.\n"
            "  int32_t margin = 0;\n"
            f"  const int tracked = {ident}_tracker_update(&g_tracker, output->data.int8,\n"
            f"                                            {big}_TRACKER_N_CLASSES, &margin);\n"
            f"  if (tracked == {big}_TRACKER_BAD_INPUT) {{\n"
            '    MicroPrintf("tracker: the output is not the model\'s 180 classes; state reset");\n'
            "    return 1;\n"
            "  }\n"
            '  MicroPrintf("tracked heart rate %d BPM (margin %d)", tracked,\n'
            "              static_cast<int>(margin));\n"
        ),
    }


def render_tracker(
    name: str, prior: TransitionPrior, output_scale: float, ident: str | None = None
) -> dict[str, str]:
    """File name -> text of the tracker's header and source for model ``name``."""
    ident = ident or c_identifier(name)
    costs = prior.int_costs(output_scale)
    jump = prior.int_jump(output_scale)
    big = ident.upper()
    if jump is None:
        jump_fields = {"jump_text": "", "jump_define": "", "jump_code": ""}
    else:
        jump_fields = {
            "jump_text": (
                f"\n * The max over predecessors is floored at -{big}_TRACKER_JUMP (re-acquire: a"
                f"\n * jump from the best class anywhere costs {prior.jump:g} logit units)."
            ),
            "jump_define": f"#define {big}_TRACKER_JUMP {jump} /* re-acquire cost, quanta */\n",
            "jump_code": (
                f"            if (best < -{big}_TRACKER_JUMP) {{ /* re-acquire */\n"
                f"                best = -{big}_TRACKER_JUMP;\n"
                "            }\n"
            ),
        }
    offsets = prior.int_label_offsets(output_scale)
    if offsets is None:
        label_fields = {"label_text": "", "label_table": "", "label_term": ""}
    else:
        label_fields = {
            "label_text": (
                "\n * From the second window on, offset(j) is added to logit(j): "
                f"{prior.label_power:g} x (log q_max -"
                "\n * log q(j)), q the heart-rate prior of the training (scaled likelihoods)."
            ),
            "label_table": (
                "/* offset(j): the training heart-rate prior divided out, logit quanta. */\n"
                "static const int32_t k_offset[N] = {"
                + ", ".join(str(int(c)) for c in offsets)
                + "};\n"
            ),
            "label_term": " + k_offset[j]",
        }
    fields = {
        "id": ident,
        "ID": big,
        "name": _comment_safe(name),
        "version": __version__,
        "n_classes": N_CLASSES,
        "half_width": prior.half_width,
        "floor": FLOOR,
        "peak_half_width": PEAK_HALF_WIDTH,
        "weight_text": f"{prior.weight:g}",
        "hop_s_text": f"{prior.hop_s:g}",
        "output_scale_text": f"{output_scale:.9g}",
        "costs_init": "{" + ", ".join(str(int(c)) for c in costs) + "}",
        "bpm_min": BPM_MIN,
        **jump_fields,
        **label_fields,
    }
    out = {}
    for ext in ("h", "c"):
        text = resources.files(TEMPLATES).joinpath(f"tracker.{ext}").read_text()
        out[f"{ident}_tracker.{ext}"] = string.Template(text).substitute(fields)
    return out
