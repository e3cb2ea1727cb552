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


def render_tracker(
    name: str, prior: TransitionPrior, output_scale: float, ident: str | None = None
) -> dict[str, str]:
    """File name -> text of the tracker's header and source for model ``name``."""
    ident = ident or c_identifier(name)
    costs = prior.int_costs(output_scale)
    fields = {
        "id": ident,
        "ID": ident.upper(),
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
    }
    out = {}
    for ext in ("h", "c"):
        text = resources.files(TEMPLATES).joinpath(f"tracker.{ext}").read_text()
        out[f"{ident}_tracker.{ext}"] = string.Template(text).substitute(fields)
    return out
