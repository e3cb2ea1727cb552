"""ppgedge: from a large PPG heart-rate model to a small int8 model that fits a Cortex-M."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ppgedge")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
