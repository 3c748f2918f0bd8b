"""Ground truth beside a dataset (ground_truth.json): objects, their masks in some or all views, optionally their meshes.

The scene generator writes one index mask per view (pixel value = object index) and a mesh per object. A real capture
annotated by hand usually has a binary mask per object on a few views, at the photos' original size, and no mesh:
an object may carry its own masks ("masks": {view: file}, nonzero = object) instead of an index, and masks that are an
exact up- or downscale of their view's image (the full-size photos of a capture read from images_4/) are resized.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DatasetError
from .cameras import Cameras
from .dataset_files import read_json, resize_image

SCHEMA_VERSION = 1
FILE_NAME = "ground_truth.json"
# a mask may differ from its view's image by a scale; width and height must agree on it to within this fraction
SCALE_TOLERANCE = 0.01


@dataclass
class ObjectInfo:
    name: str
    index: int | None = None  # value of the object's pixels in the index masks (0 is background)
    mesh_path: Path | None = None  # ground-truth mesh in world coordinates
    mask_paths: dict[int, Path] = field(default_factory=dict)  # the object's own binary masks, by camera index


@dataclass
class GroundTruth:
    path: Path  # the ground_truth.json, named in errors
    objects: list[ObjectInfo]
    mask_paths: list[Path | None]  # index masks per camera index; None for views without one
    cameras: Cameras

    def load_mask(self, view: int) -> np.ndarray:
        """int32 [H,W] object index per pixel of camera `view` (at its image's size), 0 = background."""
        mask_path = self.mask_paths[view]
        if mask_path is None:
            raise DatasetError(self.path, f"no mask for view '{self.cameras.names[view]}'")
        with _open_mask(mask_path) as image:
            if image.mode not in ("L", "P", "I", "I;16"):
                raise DatasetError(mask_path, f"mask must be a single-channel 8-bit PNG, found mode {image.mode}")
            mask = np.asarray(image, dtype=np.int32)
        height, width = self._size(view, mask, mask_path)
        if mask.shape != (height, width):  # indices: the nearest pixel, never a blend of two objects' values
            rows = ((np.arange(height) + 0.5) * mask.shape[0] / height).astype(np.int64)
            cols = ((np.arange(width) + 0.5) * mask.shape[1] / width).astype(np.int64)
            mask = mask[rows[:, None], cols[None, :]]
        return mask

    def object_mask(self, name: str, view: int) -> np.ndarray | None:
        """bool [H,W]: object `name` in camera `view` at its image's size; None where no mask covers the view."""
        info = self.object(name)
        own = info.mask_paths.get(view)
        if own is not None:
            with _open_mask(own) as image:
                values = np.asarray(image.convert("L"))
            # 0/1 and 0/255 masks both occur; above mid-grey, so a JPEG's ringing stays background
            mask = values > (127 if values.max() > 1 else 0)
            height, width = self._size(view, mask, own)
            if mask.shape != (height, width):
                mask = resize_image(mask.astype(np.float32), (width, height)) > 0.5
            return mask
        if info.index is None or self.mask_paths[view] is None:
            return None
        return self.load_mask(view) == info.index

    def masked_views(self, name: str) -> list[int]:
        """Camera indices where object `name` has a mask (its own or an index mask)."""
        info = self.object(name)
        return [i for i in range(len(self.cameras))
                if i in info.mask_paths or (info.index is not None and self.mask_paths[i] is not None)]

    def object(self, name: str) -> ObjectInfo:
        for info in self.objects:
            if info.name == name:
                return info
        known = ", ".join(info.name for info in self.objects)
        raise DatasetError(self.path, f"no object named '{name}'; the objects are: {known}")

    def _size(self, view: int, mask: np.ndarray, mask_path: Path) -> tuple[int, int]:
        """The view's image size; DatasetError unless the mask is that size or a scale of it."""
        height, width = int(self.cameras.height[view]), int(self.cameras.width[view])
        sy, sx = mask.shape[0] / height, mask.shape[1] / width
        if abs(sx - sy) > SCALE_TOLERANCE * max(sx, sy):
            raise DatasetError(mask_path, f"mask is {mask.shape[1]}x{mask.shape[0]} but its view's image is "
                                          f"{width}x{height} (not a scale of it)")
        return height, width


def _open_mask(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
        return image
    except (OSError, UnidentifiedImageError) as error:
        raise DatasetError(path, f"not a readable image: {error}") from None


def read_ground_truth(path: Path, cameras: Cameras) -> GroundTruth:
    """Parse and check ground_truth.json against the dataset's cameras (mask files must exist, views must be known)."""
    data = read_json(path)
    if data.get("version") != SCHEMA_VERSION:
        raise DatasetError(path, f"unsupported version {data.get('version')!r}, expected {SCHEMA_VERSION}")
    masks = _read_masks(path, data.get("masks", {}), cameras, "'masks'")
    mask_paths: list[Path | None] = [None] * len(cameras)
    for view, mask_path in masks.items():
        mask_paths[view] = mask_path
    objects = _read_objects(path, data.get("objects"), cameras)
    return GroundTruth(path=path, objects=objects, mask_paths=mask_paths, cameras=cameras)


def _read_masks(path: Path, masks, cameras: Cameras, where: str) -> dict[int, Path]:
    if not isinstance(masks, dict):
        raise DatasetError(path, f"{where} must be an object mapping view names to mask files")
    found = {}
    for view_name, relative in masks.items():
        if view_name not in cameras.names:
            raise DatasetError(path, f"{where}: mask for unknown view '{view_name}'")
        mask_path = path.parent / str(relative)
        if not mask_path.is_file():
            raise DatasetError(path, f"{where}: mask of view '{view_name}' not found: {mask_path}")
        found[cameras.names.index(view_name)] = mask_path
    return found


def _read_objects(path: Path, entries, cameras: Cameras) -> list[ObjectInfo]:
    if not isinstance(entries, list) or not entries:
        raise DatasetError(path, "'objects' must be a non-empty list of {name, index or masks, mesh (optional)}")
    objects = []
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict) or "name" not in entry or not ({"index", "masks"} & entry.keys()):
            raise DatasetError(path, f"object {k} must have a 'name' and an 'index' (into the index masks) "
                                     f"or 'masks' of its own")
        name = str(entry["name"])
        index = entry.get("index")
        if index is not None and (isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= 255):
            raise DatasetError(path, f"object {k} ('{name}'): index must be an integer in 1..255, found {index!r}")
        mesh_path = None
        if entry.get("mesh") is not None:
            mesh_path = path.parent / str(entry["mesh"])
            if not mesh_path.is_file():
                raise DatasetError(path, f"object '{name}': mesh file {mesh_path} not found")
        own = _read_masks(path, entry.get("masks", {}), cameras, f"object '{name}'")
        objects.append(ObjectInfo(name=name, index=index, mesh_path=mesh_path, mask_paths=own))
    for attribute in ("index", "name"):
        values = [getattr(info, attribute) for info in objects if getattr(info, attribute) is not None]
        duplicates = sorted({str(v) for v in values if values.count(v) > 1})
        if duplicates:
            raise DatasetError(path, f"duplicate object {attribute}: {', '.join(duplicates)}")
    return objects
