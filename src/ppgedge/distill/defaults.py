"""The default sweep grid (no heavy imports: the CLI reads it at start-up)."""

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
