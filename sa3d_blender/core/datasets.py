"""Load a capture (transforms.json in any flavour, or LLFF poses_bounds.npy) into one Dataset: cameras, splits, bbox."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cameras import Cameras
from .dataset_bbox import bbox_from_cameras
from .dataset_files import read_rgb
from .dataset_ground_truth import FILE_NAME as GROUND_TRUTH_FILE
from .dataset_ground_truth import GroundTruth, ObjectInfo, read_ground_truth
from .dataset_llff import read_poses_bounds
from .dataset_parsed import ParsedScene
from .dataset_transforms_json import read_nerf_synthetic, read_transforms_json
from .errors import DatasetError

__all__ = ["Dataset", "GroundTruth", "ObjectInfo", "load_dataset", "holdout_split"]

log = logging.getLogger(__name__)

# LLFF hold-out convention: every 8th view (0, 8, 16, ...) is a test view when the file gives no split
HOLDOUT_EVERY = 8
# Transparent pixels are composited over white unless the file sets background_color: the NeRF synthetic scenes are
# RGBA renders meant for a white background (DVGO's white_bkgd, nerfstudio's blender parser), and SAM sees an
# object on white as a photographed object, while on black its dark parts melt into the background.
DEFAULT_BACKGROUND = (1.0, 1.0, 1.0)


@dataclass
class Dataset:
    root: Path  # folder holding transforms.json / poses_bounds.npy
    cameras: Cameras
    train: np.ndarray  # int indices into cameras
    test: np.ndarray
    bbox: np.ndarray  # [2,3] world-space min / max corner of the region to reconstruct
    ground_truth: GroundTruth | None = None
    val: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    applied_transform: np.ndarray | None = None  # [3,4] nerfstudio transform already baked into the poses
    background: np.ndarray = field(default_factory=lambda: np.array(DEFAULT_BACKGROUND))
    format: str = ""  # "nerf_synthetic", "instant_ngp", "nerfstudio" or "llff"

    def load_image(self, i: int) -> np.ndarray:
        """float32 [H,W,3] in [0,1] of view i, transparent pixels composited over `background`."""
        path = self.cameras.image_paths[i]
        if path is None:
            raise DatasetError(self.root, f"view '{self.cameras.names[i]}' has no image file")
        image = read_rgb(path, self.background)
        expected = (int(self.cameras.height[i]), int(self.cameras.width[i]))
        if image.shape[:2] != expected:
            raise DatasetError(
                path, f"image is now {image.shape[1]}x{image.shape[0]}; it was {expected[1]}x{expected[0]} at loading"
            )
        return image


def load_dataset(path: str | Path, image_dir: str | None = None) -> Dataset:
    """Read a dataset folder, a transforms*.json or a poses_bounds.npy.

    In a folder, transforms.json wins over transforms_train.json (original NeRF layout), which wins over
    poses_bounds.npy. `image_dir` picks LLFF's downsampled images ("images_4"); the intrinsics are scaled to match.
    """
    path = Path(path).expanduser()
    scene = _read_scene(path, image_dir)
    cameras = scene.cameras
    splits = scene.splits if scene.splits is not None else holdout_split(len(cameras))
    bbox = scene.bbox if scene.bbox is not None else bbox_from_cameras(cameras, scene.source)
    root = scene.source.parent
    gt_path = root / GROUND_TRUTH_FILE
    dataset = Dataset(
        root=root,
        cameras=cameras,
        train=splits["train"],
        test=splits["test"],
        val=splits.get("val", np.zeros(0, dtype=np.int64)),
        bbox=bbox,
        ground_truth=read_ground_truth(gt_path, cameras) if gt_path.is_file() else None,
        applied_transform=scene.applied_transform,
        background=scene.background if scene.background is not None else np.array(DEFAULT_BACKGROUND),
        format=scene.format,
    )
    log.info(
        "%s: %s dataset, %d views (%d train, %d test), bbox %s .. %s%s",
        scene.source,
        scene.format,
        len(cameras),
        len(dataset.train),
        len(dataset.test),
        np.round(bbox[0], 3).tolist(),
        np.round(bbox[1], 3).tolist(),
        ", with ground truth" if dataset.ground_truth else "",
    )
    return dataset


def holdout_split(n: int, every: int = HOLDOUT_EVERY) -> dict[str, np.ndarray]:
    """Views 0, every, 2*every, ... for test, the rest for training (a single view is kept for training)."""
    indices = np.arange(n)
    if n < 2:
        return {"train": indices, "test": indices[:0]}
    is_test = indices % every == 0
    return {"train": indices[~is_test], "test": indices[is_test]}


def _read_scene(path: Path, image_dir: str | None) -> ParsedScene:
    if path.is_dir():
        candidates = [path / "transforms.json", path / "transforms_train.json", path / "poses_bounds.npy"]
        found = next((candidate for candidate in candidates if candidate.is_file()), None)
        if found is None:
            raise DatasetError(path, "no transforms.json, transforms_train.json or poses_bounds.npy in this folder")
        path = found
    elif not path.exists():
        raise DatasetError(path, "file not found")
    if path.suffix == ".npy":
        return read_poses_bounds(path, image_dir)
    if image_dir is not None:
        raise DatasetError(path, f"image_dir={image_dir!r} only applies to LLFF poses_bounds.npy datasets")
    if path.name in ("transforms_train.json", "transforms_val.json", "transforms_test.json"):
        return read_nerf_synthetic(path.parent)
    if path.suffix == ".json":
        return read_transforms_json(path)
    raise DatasetError(path, "not a dataset file: expected a folder, a transforms*.json or poses_bounds.npy")
