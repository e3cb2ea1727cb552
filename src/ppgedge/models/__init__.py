"""Models stage: the registry and the zoo (importing this registers every architecture)."""

from ppgedge.models import (  # noqa: F401  (registration side effects)
    dscnn,
    ensemble,  # noqa: F401,I001  (after the members it builds)
    mlp,
    resnet,
    spectral,
)
from ppgedge.models.registry import (
    count_macs,
    count_parameters,
    create_model,
    list_models,
    register_model,
)

__all__ = ["count_macs", "count_parameters", "create_model", "list_models", "register_model"]
