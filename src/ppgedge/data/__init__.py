"""Data stage: the generator, importers, the one dataset format and subject-wise splits."""
