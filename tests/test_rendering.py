"""Two-stride marching must keep exactly the samples a plain march through the fine occupancy grid keeps; rays that
turn opaque stop being sampled, and the render is the full render up to the light they no longer let through."""

import numpy as np
import pytest
import torch

from sa3d_blender.core.field.rendering import (TERMINATE_TRANSMITTANCE, WINDOW_STEPS, _occupied_samples, _sample_chunks,
                                         _segment_transmittance, ray_box_intersection, render_rays)
from sa3d_blender.core.field.voxel_field import FieldConfig, VoxelField


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


def test_opaque_rays_stop_being_sampled_and_render_as_without_stopping():
    """A wall at x = -0.6 in front of dense fog filling the rest of a 2 m box: rays along +x turn opaque in the
    wall, their windows behind it are never marched, and colour, opacity and depth match compositing every sample."""
    bbox = np.array([[-1.0, -0.2, -0.2], [1.0, 0.2, 0.2]])
    field = VoxelField(bbox, (101, 21, 21), FieldConfig())
    x = field.vertex_positions()[:, 0]
    with torch.no_grad():
        field.density.copy_(torch.where((x > -0.62) & (x < -0.58), 30.0, 2.0) - field.density_shift)
        field.color.normal_(generator=torch.Generator().manual_seed(1))
    field.update_occupancy()
    n = 64
    origins = torch.stack([torch.full((n,), -1.5), torch.linspace(-0.15, 0.15, n), torch.zeros(n)], -1)
    dirs = torch.tensor([[1.0, 0.0, 0.0]]).expand(n, 3).contiguous()

    with torch.no_grad():
        chunks = _sample_chunks(field, origins, dirs, jitter=False)
        ray_id, t, grid, step = next(chunks)
        index, weights = field.lookup(grid / field.grid_transform()[1] + field.grid_transform()[0])
        _, through = _segment_transmittance(field.alpha(index, weights, step), ray_id, n)
        assert bool((through < TERMINATE_TRANSMITTANCE).all())  # the first window holds the wall
        assert float(t.max()) < 0.5 + WINDOW_STEPS * field.step_size + 1e-4  # the box starts 0.5 in front
        with pytest.raises(StopIteration):
            chunks.send(through > TERMINATE_TRANSMITTANCE)  # nothing left to march: 2 m of fog skipped

        full = _occupied_samples(field, origins, dirs, jitter=False)
        assert float(full[1].max()) > 0.9  # the fog is there to be sampled without termination
        ray_id, t, grid, step = full
        index, weights = field.lookup(grid / field.grid_transform()[1] + field.grid_transform()[0])
        alpha = field.alpha(index, weights, step)
        trans, final = _segment_transmittance(alpha, ray_id, n)
        w = alpha * trans
        rgb = torch.zeros(n, 3).index_add(0, ray_id, w[:, None] * field.rgb(index, weights, dirs[ray_id]))
        rgb = rgb + final[:, None] * field.background_rgb()
        depth = torch.zeros(n).index_add(0, ray_id, w * t) / (1 - final)
        out = render_rays(field, origins, dirs)
    assert torch.allclose(out["rgb"], rgb, atol=2e-3) and torch.allclose(out["acc"], 1 - final, atol=2e-4)
    assert torch.allclose(out["depth"], depth, atol=1e-3)


def test_the_first_surface_is_where_half_the_light_has_stopped_not_the_expected_depth():
    """A thin semi-transparent sheet (opacity 0.7) at x = -0.5 in front of an opaque wall at x = 0.5: the expected
    depth lies between them, the first surface at the sheet; a ray that misses both (through fog that stops less
    than half its light) has no first surface."""
    from sa3d_blender.core.field.rendering import median_depth

    bbox = np.array([[-1.0, -0.2, -0.2], [1.0, 0.2, 0.2]])
    field = VoxelField(bbox, (201, 41, 41), FieldConfig())
    p = field.vertex_positions()
    sheet = (p[:, 0] + 0.5).abs() < 0.03  # 6 cm thick
    wall = (p[:, 0] - 0.5).abs() < 0.03
    with torch.no_grad():
        # opacity over a length L: 1 - exp(-softplus(raw) L / base voxel); 0.7 over the sheet's 6 cm
        raw = torch.log(torch.expm1(torch.tensor(-np.log(0.3) * field.base_voxel_size / 0.06)))
        field.density.copy_(torch.where(sheet, raw, torch.where(wall, 40.0, -30.0)) - field.density_shift)
        field.density[(p[:, 1] > 0.1)] = -30.0 - field.density_shift  # the top of the box holds nothing
    field.update_occupancy(1e-6)
    origins = torch.tensor([[-1.5, 0.0, 0.0], [-1.5, 0.15, 0.0]])
    dirs = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    with torch.no_grad():
        out = render_rays(field, origins, dirs, keep_samples=True)
    first = median_depth(out["samples"], 2)
    assert 0.97 <= float(first[0]) <= 1.03, first  # inside the sheet, 1.0 from the origin
    assert float(out["depth"][0]) > 1.3  # the expected depth is pulled towards the wall at 2.0
    assert torch.isinf(first[1])
