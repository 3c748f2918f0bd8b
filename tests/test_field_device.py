"""Every tensor of a field moves with it: a tensor left behind on the CPU would mix devices on the first GPU render."""

from __future__ import annotations

import numpy as np
import torch

from sa3d_blender.core.field.field_space import Contraction, NDCSpace
from sa3d_blender.core.field.voxel_field import FieldConfig, VoxelField


def _all_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    found = {name: value for name, value in vars(module).items() if isinstance(value, torch.Tensor)}
    found.update(dict(module.named_buffers()))
    found.update(dict(module.named_parameters()))
    return found


def test_moving_a_field_to_the_meta_device_moves_every_tensor():
    spaces = [None, Contraction(centre=(0.0, 0.0, 0.0), half=1.0),
              NDCSpace(pose=tuple(map(tuple, np.eye(4))), near=1.0, sx=2.0, sy=2.0, xy_extent=(1.2, 1.2))]
    for space in spaces:
        bbox = np.array([[-1.0, -1, -1], [1, 1, 1]]) if space is None else space.field_bbox()
        field = VoxelField(bbox, (9, 9, 9), FieldConfig(), space=space)
        field.update_occupancy()
        tensors = _all_tensors(field)
        assert {"density", "color", "background", "bbox", "occupancy", "coarse_occupancy"} <= set(tensors)
        moved = _all_tensors(field.to("meta"))
        left_behind = [name for name, tensor in moved.items() if tensor.device.type != "meta"]
        assert not left_behind, left_behind
