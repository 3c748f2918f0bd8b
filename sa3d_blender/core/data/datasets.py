"""Load a capture (transforms.json in any flavour, LLFF poses_bounds.npy, a COLMAP sparse model) into one Dataset:
cameras, splits, and the region where the objects are (bbox)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .cameras import Cameras
from .dataset_bbox import bbox_from_cameras, bbox_from_points
from .dataset_colmap import find_model, read_colmap
from .dataset_files import image_size, read_rgb, resize_image
from .dataset_ground_truth import FILE_NAME as GROUND_TRUTH_FILE
from .dataset_ground_truth import GroundTruth, ObjectInfo, read_ground_truth
from .dataset_llff import read_poses_bounds
from .dataset_parsed import ParsedScene
from .dataset_transforms_json import read_nerf_synthetic, read_transforms_json

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
    format: str = ""  # "nerf_synthetic", "instant_ngp", "nerfstudio", "llff" or "colmap"
    # "unbounded" (360-degree capture: a contracted outer region around the bbox), "forward" (forward-facing: the
    # same with inverse-depth sampling towards the far bound) or "bounded" (nothing outside the bbox)
    scene_type: str = "unbounded"
    reduced_images: list[list[Path]] = field(default_factory=list)  # smaller copies of the images (images_4/ ...)
    full_cameras: Cameras | None = None  # the cameras at the image files' size, when `cameras` are reduced
    near: np.ndarray | None = None  # [N] closest scene depth per view, when the file gives it (LLFF bounds)
    far: np.ndarray | None = None  # [N] farthest scene depth per view, likewise

    def typical_depth(self) -> float:
        """A depth at which the cameras see the scene: the geometric mean of the median near and far bounds, else the
        distance from the mean camera centre to the bbox centre."""
        if self.near is not None and self.far is not None:
            return float(np.sqrt(np.median(self.near) * np.median(self.far)))
        return float(np.linalg.norm(self.cameras.c2w[:, :3, 3].mean(axis=0) - self.bbox.mean(axis=0)))

    def near_bound(self) -> float:
        """Depth in front of every camera where the scene starts: 0.75 of the nearest LLFF bound (as NeRF's LLFF
        set-up), else 0.75 of the smallest camera-to-bbox distance."""
        if self.near is not None:
            return 0.75 * float(np.min(self.near))
        centres = self.cameras.c2w[:, :3, 3]
        outside = np.maximum(self.bbox[0] - centres, 0) + np.maximum(centres - self.bbox[1], 0)
        distance = float(np.linalg.norm(outside, axis=1).min())
        return 0.75 * distance if distance > 0 else 0.05 * float(np.linalg.norm(self.bbox[1] - self.bbox[0]))

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
        return image if image.shape[1::-1] == expected else resize_image(image, expected)

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
    # the file's own box wins; then the sparse points the cameras look at; then where the optical axes meet
    bbox = scene.bbox
    if bbox is None and scene.points is not None:
        try:
            around = bbox_from_cameras(cameras, scene.source)
        except DatasetError:  # parallel axes (a forward-facing capture): the points alone say where the scene is
            around = None
        bbox = bbox_from_points(scene.points, around)
    if bbox is None:
        bbox = bbox_from_cameras(cameras, scene.source)
    if scene.depth_range is None and scene.points is not None:
        scene.depth_range = depth_range_from_points(cameras, scene.points)
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
        near=None if scene.depth_range is None else scene.depth_range[0],
        far=None if scene.depth_range is None else scene.depth_range[1],
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


def depth_range_from_points(cameras: Cameras, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per view, the 1st and 99th percentile depth of the sparse points in front of it (LLFF's bounds, from COLMAP)."""
    near, far = [], []
    for i in range(len(cameras)):
        local = (points - cameras.c2w[i, :3, 3]) @ cameras.c2w[i, :3, :3]
        depth = -local[:, 2]
        depth = depth[depth > 0]
        lo, hi = np.percentile(depth, [1, 99]) if depth.size else (np.nan, np.nan)
        near.append(lo)
        far.append(hi)
    near, far = np.array(near), np.array(far)
    # a view that sees no point takes the others' range
    return np.where(np.isfinite(near), near, np.nanmin(near)), np.where(np.isfinite(far), far, np.nanmax(far))


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
            model = find_model(path)
            if model is not None:
                if image_dir is not None:
                    raise DatasetError(path, f"image_dir={image_dir!r} only applies to LLFF poses_bounds.npy datasets")
                return read_colmap(model)
            raise DatasetError(path, "no transforms.json, transforms_train.json, poses_bounds.npy or COLMAP model "
                                     "(cameras and images .bin/.txt, also under sparse/0) in this folder")
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
