"""What a format reader (transforms.json, poses_bounds.npy) hands to `load_dataset` before the shared defaults apply."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cameras import Cameras


@dataclass
class ParsedScene:
    source: Path  # the file that was read, named in later errors
    format: str  # "nerf_synthetic", "instant_ngp", "nerfstudio" or "llff"
    cameras: Cameras
    splits: dict[str, np.ndarray] | None = None  # "train"/"val"/"test" -> view indices, None when the file has none
    bbox: np.ndarray | None = None  # [2,3], None when the file does not say
    applied_transform: np.ndarray | None = None  # [3,4] nerfstudio transform already baked into the poses
    background: np.ndarray | None = None  # RGB in [0,1] to composite transparent images over
