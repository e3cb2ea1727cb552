"""Models stage: the registry and the zoo (importing this registers every architecture)."""

from ppgedge.models import dscnn, mlp, resnet  # noqa: F401  (registration side effects)
from ppgedge.models.registry import (
    count_macs,
    count_parameters,
    create_model,
    list_models,
    register_model,
)

__all__ = ["count_macs", "count_parameters", "create_model", "list_models", "register_model"]
