"""Deployment artifacts: TensorFlow Lite Micro firmware bundles and their arena sizes."""
