"""Profile and budget-check int8 .tflite models against Cortex-M target profiles.

The last stage: reads any full-int8 TFLite model (ours or not), estimates what it costs on a
part (flash, SRAM, cycles, energy) and gates CI on a budget. Imports only ppgedge.errors and
ppgedge.atomic from the rest of the package.
"""

from ppgedge.profile.check import CheckResult, run_check
from ppgedge.profile.report import Report, profile
from ppgedge.profile.targets import Budget, Target, available, load_config, resolve

__all__ = [
    "Budget",
    "CheckResult",
    "Report",
    "Target",
    "available",
    "load_config",
    "profile",
    "resolve",
    "run_check",
]
