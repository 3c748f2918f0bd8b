"""What a format reader (transforms.json, poses_bounds.npy) hands to `load_dataset` before the shared defaults apply."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cameras import Cameras


@dataclass
class ParsedScene:
    source: Path  # the file that was read, named in later errors
    format: str  # "nerf_synthetic", "instant_ngp", "nerfstudio", "llff" or "colmap"
    cameras: Cameras
    splits: dict[str, np.ndarray] | None = None  # "train"/"val"/"test" -> view indices, None when the file has none
    bbox: np.ndarray | None = None  # [2,3], None when the file does not say
    applied_transform: np.ndarray | None = None  # [3,4] nerfstudio transform already baked into the poses
    background: np.ndarray | None = None  # RGB in [0,1] to composite transparent images over
    forward_facing: bool = False  # every camera looks the same way (LLFF): no 360-degree surroundings
    depth_range: tuple[np.ndarray, np.ndarray] | None = None  # per-view near, far scene depths when the file gives them
    reduced_images: list[list[Path]] = field(default_factory=list)  # smaller copies of every image (images_4/...), one list per folder
    points: np.ndarray | None = None  # [P,3] sparse scene points (COLMAP points3D, nerfstudio sparse_pc.ply)
