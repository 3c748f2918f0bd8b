"""The project's cache folder, in one place for the worker, the set-up code and Blender (standard library only)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """Weights, environments, view caches and test scenes: $SA3D_CACHE or ~/.cache/sa3d_blender."""
    return Path(os.environ.get("SA3D_CACHE") or Path.home() / ".cache" / "sa3d_blender")


def mobile_sam_weights() -> Path:
    """Where the set-up puts MobileSAM's weights and where the worker looks for them by default."""
    return cache_root() / "weights" / "mobile_sam.pt"
