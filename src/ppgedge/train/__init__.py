"""Training stage: supervised training of any zoo model (teachers and from-scratch baselines)."""
