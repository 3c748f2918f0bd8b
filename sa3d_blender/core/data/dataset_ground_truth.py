"""Ground truth written by the scene generator (ground_truth.json): objects, their meshes, per-view index masks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DatasetError
from .cameras import Cameras
from .dataset_files import read_json

SCHEMA_VERSION = 1
FILE_NAME = "ground_truth.json"


@dataclass
class ObjectInfo:
    index: int  # value of the object's pixels in the masks (0 is background)
    name: str
    mesh_path: Path  # ground-truth mesh in world coordinates


@dataclass
class GroundTruth:
    path: Path  # the ground_truth.json, named in errors
    objects: list[ObjectInfo]
    mask_paths: list[Path | None]  # per camera index; None for views without a mask
    cameras: Cameras

    def load_mask(self, view: int) -> np.ndarray:
        """int32 [H,W] object index per pixel of camera `view`, 0 = background."""
        mask_path = self.mask_paths[view]
        if mask_path is None:
            raise DatasetError(self.path, f"no mask for view '{self.cameras.names[view]}'")
        try:
            with Image.open(mask_path) as image:
                if image.mode not in ("L", "P", "I", "I;16"):
                    raise DatasetError(mask_path, f"mask must be a single-channel 8-bit PNG, found mode {image.mode}")
                mask = np.asarray(image, dtype=np.int32)
        except (OSError, UnidentifiedImageError) as error:
            raise DatasetError(mask_path, f"not a readable image: {error}") from None
        expected = (int(self.cameras.height[view]), int(self.cameras.width[view]))
        if mask.shape != expected:
            raise DatasetError(
                mask_path,
                f"mask is {mask.shape[1]}x{mask.shape[0]} but its view's image is {expected[1]}x{expected[0]}",
            )
        return mask

    def object(self, name: str) -> ObjectInfo:
        for info in self.objects:
            if info.name == name:
                return info
        known = ", ".join(info.name for info in self.objects)
        raise DatasetError(self.path, f"no object named '{name}'; the objects are: {known}")


def read_ground_truth(path: Path, cameras: Cameras) -> GroundTruth:
    """Parse and check ground_truth.json against the dataset's cameras (mask files must exist, views must be known)."""
    data = read_json(path)
    if data.get("version") != SCHEMA_VERSION:
        raise DatasetError(path, f"unsupported version {data.get('version')!r}, expected {SCHEMA_VERSION}")
    objects = _read_objects(path, data.get("objects"))
    masks = data.get("masks", {})
    if not isinstance(masks, dict):
        raise DatasetError(path, "'masks' must be an object mapping view names to mask files")
    mask_paths: list[Path | None] = [None] * len(cameras)
    for view_name, relative in masks.items():
        if view_name not in cameras.names:
            raise DatasetError(path, f"mask for unknown view '{view_name}'")
        mask_path = path.parent / str(relative)
        if not mask_path.is_file():
            raise DatasetError(path, f"mask of view '{view_name}' not found: {mask_path}")
        mask_paths[cameras.names.index(view_name)] = mask_path
    return GroundTruth(path=path, objects=objects, mask_paths=mask_paths, cameras=cameras)


def _read_objects(path: Path, entries) -> list[ObjectInfo]:
    if not isinstance(entries, list) or not entries:
        raise DatasetError(path, "'objects' must be a non-empty list of {index, name, mesh}")
    objects = []
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"index", "name", "mesh"} <= entry.keys():
            raise DatasetError(path, f"object {k} must have 'index', 'name' and 'mesh'")
        index = entry["index"]
        if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= 255:
            raise DatasetError(
                path, f"object {k} ('{entry['name']}'): index must be an integer in 1..255, found {index!r}"
            )
        mesh_path = path.parent / str(entry["mesh"])
        if not mesh_path.is_file():
            raise DatasetError(path, f"object '{entry['name']}': mesh file {mesh_path} not found")
        objects.append(ObjectInfo(index=index, name=str(entry["name"]), mesh_path=mesh_path))
    for attribute in ("index", "name"):
        values = [getattr(info, attribute) for info in objects]
        duplicates = sorted({str(v) for v in values if values.count(v) > 1})
        if duplicates:
            raise DatasetError(path, f"duplicate object {attribute}: {', '.join(duplicates)}")
    return objects
