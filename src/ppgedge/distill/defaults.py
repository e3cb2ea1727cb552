"""The default sweep grid and distillation settings (no heavy imports: the CLI reads them at
start-up)."""

from ppgedge.errors import PpgedgeError

DEFAULT_STUDENTS = (
    "resnet_micro",
    "resnet_mini",
    "resnet_tiny",
    "resnet_small",
    "resnet_base",
    "mlp_micro",
    "mlp_small",
    "mlp",
)
DEFAULT_METHODS = ("scratch", "hard", "soft", "dkd", "feature")

# function matching (``[distill] mix``, trainer.mix_windows): adopted on validation subjects,
# docs/motion-benchmark.md "Function matching"
DEFAULT_MIX = 0.4
MAX_MIX = 0.5  # exclusive: the labelled window must dominate the mix
# what the online teacher labels on top of the augmented windows (setting -> what it does to
# them): each needs augmentation on
TEACHER_LABELLED = {"mix": "mixes", "motion_aug_p": "corrupts"}


def check_mix(mix: float, name: str) -> None:
    """One line for a share the mix cannot use (NaN included)."""
    if not 0 <= mix < MAX_MIX:
        raise PpgedgeError(f"{name} must be 0 (off) or in (0, {MAX_MIX:g}), got {mix:g}")
