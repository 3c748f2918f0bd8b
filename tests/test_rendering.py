"""Two-stride marching must keep exactly the samples a plain march through the fine occupancy grid keeps."""

import numpy as np
import pytest
import torch

from sa3d_blender.core.rendering import _occupied_samples, ray_box_intersection
from sa3d_blender.core.voxel_field import FieldConfig, VoxelField


def _plain_march(field, origins, dirs):
    """Every half-voxel step of every ray, kept where t is inside the box and the nearest vertex is occupied."""
    t_near, t_far = ray_box_intersection(origins, dirs, field.bbox)
    n_steps = int(torch.ceil((t_far - t_near).max() / field.step_size)) + 1
    t = t_near[:, None] + (torch.arange(n_steps) + 0.5) * field.step_size
    points = origins[:, None] + dirs[:, None] * t[..., None]
    occupied = field.occupancy[field.nearest_index(field.grid_coords(points.reshape(-1, 3)))].view(t.shape)
    keep = (t < t_far[:, None]) & occupied
    ray_id = torch.arange(len(origins))[:, None].expand_as(t)
    return ray_id[keep], t[keep]


@pytest.mark.parametrize("shape", [(40, 40, 12), (37, 23, 9)], ids=["multiple-of-4", "odd"])
def test_coarse_skipping_loses_no_occupied_sample(shape):
    gen = torch.Generator().manual_seed(0)
    bbox = np.array([[-1.0, -0.7, -0.2], [1.0, 0.7, 0.3]])
    field = VoxelField(bbox, shape, FieldConfig())
    # sparse specks, the worst case for a coarse grid: every occupied cell is a single dilated vertex
    with torch.no_grad():
        field.density.fill_(-20.0)
        specks = torch.randperm(field.density.numel(), generator=gen)[:15]
        field.density[specks] = 20.0
    field.update_occupancy()
    assert 0.001 < float(field.occupancy.float().mean()) < 0.2 and not bool(field.coarse_occupancy.all())
    # rays from outside through the box in every direction, and rays aimed exactly at the specks
    n = 3000
    origins = torch.randn(n, 3, generator=gen) * 2.0
    targets = torch.rand(n, 3, generator=gen) * torch.tensor(bbox[1] - bbox[0], dtype=torch.float32) + torch.tensor(bbox[0], dtype=torch.float32)
    targets[:300] = field.vertex_positions()[specks].repeat(20, 1)
    dirs = torch.nn.functional.normalize(targets - origins, dim=-1)
    ray_id, t, _, _ = _occupied_samples(field, origins, dirs, jitter=False)
    ref_ray, ref_t = _plain_march(field, origins, dirs)
    assert len(ref_t) > 1000
    assert torch.equal(ray_id, ref_ray)
    assert torch.allclose(t, ref_t, atol=1e-5)
