"""Save and load a trained VoxelField together with the scene's cameras and box, versioned and written atomically."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..atomic_files import atomic_write
from ..data.cameras import Cameras
from ..errors import CheckpointError
from .field_space import space_from_dict
from .voxel_field import FieldConfig, VoxelField

FORMAT = "sa3d_blender.voxel_field"
CAMERA_ARRAYS = ("c2w", "fx", "fy", "cx", "cy", "width", "height", "distortion", "fisheye")
VERSION = 3  # 1 kept density and colour in one "grid" table; 2 had no field space (bounded only)


def save_field(path: str | Path, field: VoxelField, cameras: Cameras, extra: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": asdict(field.config),
        "shape": list(field.shape),
        "base_voxel_size": field.base_voxel_size,
        "bbox": field.bbox.cpu(),
        "space": None if field.space is None else field.space.to_dict(),
        "density": field.density.detach().cpu(),
        "color": field.color.detach().cpu(),
        "background": field.background.detach().cpu(),
        "occupancy": field.occupancy.cpu(),
        "cameras": {
            **{k: torch.as_tensor(getattr(cameras, k)) for k in CAMERA_ARRAYS},
            "names": list(cameras.names),
            "image_paths": [None if p is None else str(p) for p in cameras.image_paths],
        },
        "extra": extra or {},
    }
    with atomic_write(path) as f:
        torch.save(payload, f)
    return path


def load_field(path: str | Path, device: torch.device | str = "cpu") -> tuple[VoxelField, Cameras, dict]:
    """The field, the cameras it was trained with, and the `extra` dict; CheckpointError names what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "field checkpoint not found")
    try:
        # tensors and plain types only: a checkpoint from elsewhere cannot run code when loaded
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # zip, pickle and I/O errors come in many types; all mean the same to the user
        raise CheckpointError(path, "not a readable field checkpoint (truncated, damaged or another kind of file): "
                                    f"{type(exc).__name__}: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(path, "not an sa3d_blender field checkpoint (no 'format' marker)")
    if payload.get("version") != VERSION:
        raise CheckpointError(path, f"field checkpoint version {payload.get('version')} but this sa3d_blender reads "
                                    f"version {VERSION}: retrain the field")
    try:
        field = VoxelField(payload["bbox"].numpy(), tuple(payload["shape"]), FieldConfig(**payload["config"]),
                           base_voxel_size=payload["base_voxel_size"],
                           space=space_from_dict(payload.get("space")))
        with torch.no_grad():
            field.density.copy_(payload["density"])
            field.color.copy_(payload["color"])
            field.background.copy_(payload["background"])
        field.set_occupancy(payload["occupancy"])
        cams = payload["cameras"]
        arrays = {k: cams[k].numpy() for k in CAMERA_ARRAYS}
        cameras = Cameras(**arrays, names=cams["names"], image_paths=cams["image_paths"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise CheckpointError(path, f"field checkpoint is incomplete or inconsistent: {exc}") from None
    return field.to(device), cameras, payload.get("extra", {})
