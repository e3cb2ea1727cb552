"""Reading a firmware bundle's ``manifest.json`` found on disk, e.g. in the ``tflm/`` folder
beside a ``.tflite``: a user's folder may hold anything under that name, so it is read only as a
regular file of bounded size holding a JSON object; anything else is "no bundle here"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
MANIFEST_MAX_BYTES = 1 << 20  # a bundle manifest is a few KB: a larger file is not ours


def read_bundle_manifest(bundle_dir: Path) -> dict[str, Any] | None:
    """The manifest in ``bundle_dir`` as a dict, or None where there is none that could be
    a bundle's (missing, not a regular file, over 1 MB, not JSON, not an object)."""
    path = Path(bundle_dir) / MANIFEST
    try:
        if not path.is_file():  # a device or fifo named manifest.json is not a bundle's
            return None
        with open(path, "rb") as f:
            raw = f.read(MANIFEST_MAX_BYTES + 1)
        man = json.loads(raw) if len(raw) <= MANIFEST_MAX_BYTES else None
    except (OSError, ValueError):
        return None
    return man if isinstance(man, dict) else None
