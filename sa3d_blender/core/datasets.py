"""Load a capture (transforms.json in any flavour, or LLFF poses_bounds.npy) into one Dataset: cameras, splits, bbox."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .cameras import Cameras
from .dataset_bbox import bbox_from_cameras
from .dataset_files import image_size, read_rgb, resize_rgb
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
# Pixels per view that training and SA3D work on (images above it are reduced; masks and meshes are still made for the
# full-size cameras). Measured on flower (34 views, 240 s on 2 cores, PSNR on the 1008x756 test frames): see README.
DEFAULT_PIXEL_BUDGET = 250_000
SCENE_TYPES = ("unbounded", "forward", "bounded")
# Cameras whose viewing directions all lie within this angle of their mean look one way: a forward-facing capture
FORWARD_FACING_DEGREES = 45.0


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
    # "unbounded" (360-degree capture: a contracted outer region around the bbox), "forward" (forward-facing: the
    # same with inverse-depth sampling towards the far bound) or "bounded" (nothing outside the bbox)
    scene_type: str = "unbounded"
    reduced_images: list[list[Path]] = field(default_factory=list)  # smaller copies of the images (images_4/ ...)
    full_cameras: Cameras | None = None  # the cameras at the image files' size, when `cameras` are reduced

    def load_image(self, i: int) -> np.ndarray:
        """float32 [H,W,3] in [0,1] of view i at the size of `cameras[i]`, transparent pixels composited over
        `background`. Reduced cameras read the smallest stored copy at least that big and shrink it (area average)."""
        expected = (int(self.cameras.width[i]), int(self.cameras.height[i]))
        source = self.full_cameras or self.cameras
        path = source.image_paths[i]
        if path is None:
            raise DatasetError(self.root, f"view '{self.cameras.names[i]}' has no image file")
        for folder in reversed(self.reduced_images):  # smallest first
            size = image_size(folder[i])
            if size[0] >= expected[0] and size[1] >= expected[1]:
                path = folder[i]
                break
        image = read_rgb(path, self.background)
        at_loading = (int(source.width[i]), int(source.height[i]))
        if path == source.image_paths[i] and image.shape[1::-1] != at_loading:
            raise DatasetError(
                path, f"image is now {image.shape[1]}x{image.shape[0]}; it was {at_loading[0]}x{at_loading[1]} at loading"
            )
        return image if image.shape[1::-1] == expected else resize_rgb(image, expected)

    def at_pixel_budget(self, pixels: int | None = DEFAULT_PIXEL_BUDGET) -> Dataset:
        """This dataset with every view reduced to at most `pixels` pixels (None or 0: unchanged); the full-size
        cameras stay in `full_cameras`."""
        full = self.full_cameras or self.cameras
        if not pixels:
            return replace(self, cameras=full, full_cameras=None)
        factors = np.minimum(1.0, np.sqrt(pixels / (full.width * full.height)))
        if np.all(factors == 1.0):
            return replace(self, cameras=full, full_cameras=None)
        return replace(self, cameras=full.scaled(factors), full_cameras=full)


def load_dataset(path: str | Path, image_dir: str | None = None, scene_type: str | None = None) -> Dataset:
    """Read a dataset folder, a transforms*.json or a poses_bounds.npy.

    In a folder, transforms.json wins over transforms_train.json (original NeRF layout), which wins over
    poses_bounds.npy. `image_dir` picks LLFF's image folder ("images_4"); the intrinsics are scaled to match.
    `scene_type` (one of SCENE_TYPES) overrides what the cameras and the format suggest.
    """
    path = Path(path).expanduser()
    if scene_type is not None and scene_type not in SCENE_TYPES:
        raise DatasetError(path, f"unknown scene type {scene_type!r}; expected one of {', '.join(SCENE_TYPES)}")
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
        scene_type=scene_type or _scene_type(scene),
        reduced_images=scene.reduced_images,
    )
    log.info(
        "%s: %s dataset (%s), %d views (%d train, %d test), bbox %s .. %s%s",
        scene.source,
        scene.format,
        dataset.scene_type,
        len(cameras),
        len(dataset.train),
        len(dataset.test),
        np.round(bbox[0], 3).tolist(),
        np.round(bbox[1], 3).tolist(),
        ", with ground truth" if dataset.ground_truth else "",
    )
    return dataset


def _scene_type(scene: ParsedScene) -> str:
    # NeRF-synthetic renders are objects on a transparent background: nothing lies outside their box
    if scene.format == "nerf_synthetic":
        return "bounded"
    if scene.forward_facing:
        return "forward"
    axes = -scene.cameras.c2w[:, :3, 2]
    mean = axes.mean(axis=0)
    mean /= max(np.linalg.norm(mean), 1e-12)
    spread = np.degrees(np.arccos(np.clip(axes @ mean, -1, 1))).max()
    return "forward" if spread < FORWARD_FACING_DEGREES else "unbounded"


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
