"""``ppgedge run``: the whole chain, teacher to firmware bundle, as one resumable command.

The config half (:mod:`ppgedge.pipeline.config`) is imported eagerly and is light; the runner
(:mod:`ppgedge.pipeline.run`, which imports PyTorch) only when asked for, so a bad
``ppgedge.toml`` is refused before any heavy import.
"""

from typing import Any

from ppgedge.pipeline.config import RunConfig, load_run_config, write_template

_RUNNER = ("RunObserver", "RunResult", "quick_config", "run_pipeline")

__all__ = ["RunConfig", "load_run_config", "write_template", *_RUNNER]


def __getattr__(name: str) -> Any:
    if name in _RUNNER:
        from ppgedge.pipeline import run

        return getattr(run, name)
    raise AttributeError(f"module 'ppgedge.pipeline' has no attribute {name!r}")
