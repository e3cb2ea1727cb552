"""``ppgedge run``: the whole chain, teacher to firmware bundle, as one resumable command."""

from ppgedge.pipeline.config import RunConfig, load_run_config, write_template
from ppgedge.pipeline.run import RunObserver, RunResult, quick_config, run_pipeline

__all__ = [
    "RunConfig",
    "RunObserver",
    "RunResult",
    "load_run_config",
    "quick_config",
    "run_pipeline",
    "write_template",
]
