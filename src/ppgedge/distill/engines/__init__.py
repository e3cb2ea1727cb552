"""Sweep engines: where the grid's cells run. Each yields a :class:`~ppgedge.distill.grid.
CellOutcome` per cell as soon as that cell ends, so results stream into the sweep's files."""

ENGINES = ("local", "ray")
