"""The project's cache folder and the checks of what is downloaded into it, in one place for the worker, the set-up
code and Blender (standard library only)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_root() -> Path:
    """Weights, environments, view caches and test scenes: $SA3D_CACHE or ~/.cache/sa3d_blender."""
    return Path(os.environ.get("SA3D_CACHE") or Path.home() / ".cache" / "sa3d_blender")


def mobile_sam_weights() -> Path:
    """Where the set-up puts MobileSAM's weights and where the worker looks for them by default."""
    return cache_root() / "weights" / "mobile_sam.pt"


def file_sha256(path: Path) -> str:
    """sha256 hex digest of a file, read in chunks so multi-GB checkpoints do not sit in memory twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()
