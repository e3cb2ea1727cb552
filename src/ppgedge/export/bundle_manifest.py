"""Reading a firmware bundle's ``manifest.json`` found on disk, e.g. in the ``tflm/`` folder
beside a ``.tflite``: a user's folder may hold anything under that name, so it is read only as a
regular file of bounded size holding a JSON object; anything else is "no bundle here"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
MANIFEST_MAX_BYTES = 1 << 20  # a bundle manifest is a few KB: a larger file is not ours


class NotAManifest(ValueError):
    """A readable file that is not one of our manifests (too large, or not a JSON object)."""


def read_json_object(path: Path, max_bytes: int) -> dict[str, Any]:
    """A manifest found on disk: a regular file of at most ``max_bytes`` holding a JSON
    object. :class:`NotAManifest` when it is not one, ``ValueError`` when it is not JSON,
    ``OSError`` when it cannot be read (a device or fifo is not a regular file)."""
    if not path.is_file():
        raise NotAManifest("not a regular file")
    with open(path, "rb") as f:
        raw = f.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise NotAManifest(f"over {max_bytes:,} B; ppgedge writes tens of KB")
    obj = json.loads(raw)
    if not isinstance(obj, dict):
        raise NotAManifest("not a JSON object")
    return obj


def read_bundle_manifest(bundle_dir: Path) -> dict[str, Any] | None:
    """The manifest in ``bundle_dir`` as a dict, or None where there is none that could be
    a bundle's (missing, not a regular file, over 1 MB, not JSON, not an object)."""
    try:
        return read_json_object(Path(bundle_dir) / MANIFEST, MANIFEST_MAX_BYTES)
    except (OSError, ValueError):
        return None
