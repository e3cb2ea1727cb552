"""Evaluation: metrics, the spectral baseline and model predictions on a dataset."""
