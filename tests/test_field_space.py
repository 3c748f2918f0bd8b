"""Field spaces: the contraction and NDC maps invert, NDC rays stay on their world rays, and a contracted or NDC
field renders a known scene (a coloured wall far outside the inner region) where a box would lose it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sa3d_blender.core.data.cameras import Cameras
from sa3d_blender.core.field.field_space import Contraction, NDCSpace, ndc_for_cameras, space_from_dict
from sa3d_blender.core.field.rendering import render_rays
from sa3d_blender.core.field.voxel_field import FieldConfig, VoxelField


def forward_cameras(n=5) -> Cameras:
    c2w = np.repeat(np.eye(4)[None], n, axis=0)
    c2w[:, 0, 3] = np.linspace(-0.5, 0.5, n)
    c2w[:, 1, 3] = np.linspace(0.2, -0.2, n)
    return Cameras(c2w=c2w, fx=[80.0] * n, fy=[80.0] * n, cx=[40.0] * n, cy=[30.0] * n, width=[80] * n,
                   height=[60] * n, names=[f"v{k}" for k in range(n)], image_paths=[None] * n)


def test_contraction_inverts_and_keeps_the_inner_cube_linear():
    c = Contraction(centre=(1.0, -2.0, 0.5), half=2.0)
    points = torch.as_tensor(np.random.default_rng(0).normal(scale=30, size=(2000, 3)), dtype=torch.float64)
    q = c.to_field(points)
    assert q.abs().max() < 1.2 + 1e-9
    torch.testing.assert_close(c.to_world(q), points, rtol=1e-6, atol=1e-6)
    inner = torch.tensor([[1.5, -1.0, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(c.to_field(inner), (inner - torch.tensor([1.0, -2.0, 0.5])) / 2.0)
    assert space_from_dict(c.to_dict()) == c


@pytest.mark.parametrize("depth_scale", [1.0, 0.4])
def test_ndc_rays_stay_on_their_world_rays(depth_scale):
    cameras = forward_cameras()
    space = ndc_for_cameras(cameras, near=1.0, typical_depth=1.5, depth_scale=depth_scale)
    assert space_from_dict(space.to_dict()) == space
    assert np.allclose(space.field_bbox()[:, 2], [-depth_scale, depth_scale])
    points = torch.as_tensor(cameras.rays(np.zeros(50, int), np.linspace(0, 80, 50), np.linspace(0, 60, 50))[0]
                             + np.random.default_rng(1).uniform([-3, -3, -60], [3, 3, -1.2], (50, 3)))
    torch.testing.assert_close(space.to_world(space.to_field(points)), points, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(space.camera_depth(space.to_field(points)[:, 2]), -points[:, 2], rtol=1e-6, atol=1e-6)
    origins, dirs = (torch.as_tensor(a, dtype=torch.float64) for a in cameras.rays(
        np.arange(5).repeat(20), np.tile(np.linspace(0, 80, 20), 5), np.tile(np.linspace(0, 60, 20), 5)))
    o_ndc, d_ndc = space.rays_to_field(origins, dirs)
    for s in (0.0, 0.3, 0.9, 0.99):
        world = space.to_world(o_ndc + s * d_ndc)
        offset = world - origins
        along = (offset * dirs).sum(-1, keepdim=True)
        # on the ray, up to the float32 precision of the camera rays
        assert ((offset - along * dirs).norm(dim=-1) < 1e-6 * along.squeeze(-1).abs() + 1e-9).all()
        assert (along > 0).all()
    # every camera's view of the scene, from the typical depth out, is inside the box
    world = origins + dirs * torch.linspace(1.5, 500, 100, dtype=torch.float64)[:, None, None]
    q = space.to_field(world.reshape(-1, 3))
    box = torch.as_tensor(space.field_bbox())
    assert ((q >= box[0] - 1e-9) & (q <= box[1] + 1e-9)).all()


def _wall_field(space, bbox_world=None) -> VoxelField:
    """A field whose world beyond z = -8 (several times the inner cube's size away) is opaque and red."""
    bbox = space.field_bbox() if space is not None else bbox_world
    field = VoxelField(bbox, (48, 48, 48), FieldConfig(), space=space)
    with torch.no_grad():
        world = field.to_world(field.vertex_positions().double()).float()
        wall = world[:, 2] < -8
        field.density.fill_(-20.0)
        field.density[wall] = 30.0
        field.color[:, 0] = 20.0  # red matter, black background: red pixels are pixels that reached the wall
        field.color[:, 1:] = -20.0
        field.background.fill_(-5.0)
    field.update_occupancy()
    return field


def test_contracted_and_ndc_fields_render_a_far_wall_that_a_box_misses():
    cameras = forward_cameras()
    origins, dirs = (torch.as_tensor(a) for a in cameras.pixel_rays(2))
    for space in (Contraction(centre=(0.0, 0.0, -3.0), half=2.0), ndc_for_cameras(cameras, near=1.0, typical_depth=1.5)):
        out = render_rays(_wall_field(space), origins, dirs)
        assert out["acc"].mean() > 0.95, space.kind
        assert out["rgb"][:, 0].mean() > 0.9 and out["rgb"][:, 1:].mean() < 0.1, space.kind
        # the wall's front is at z = -8 and the rays stop soon after it
        z = out["depth"] * -dirs[:, 2]
        assert ((z > 6) & (z < 20)).float().mean() > 0.95, space.kind
    box = _wall_field(None, np.array([[-4.0, -4, -7], [4, 4, 1]]))
    assert render_rays(box, origins, dirs)["acc"].mean() < 0.05


def test_inner_opacity_counts_only_what_lies_in_the_inner_cube():
    """Training's opacity entropy for contracted fields is taken on the inner cube's part of each ray: a far wall in
    the shell must not count, a slab inside the cube must, and the same as the whole ray's opacity."""
    cameras = forward_cameras()
    origins, dirs = (torch.as_tensor(a) for a in cameras.pixel_rays(2))
    field = _wall_field(Contraction(centre=(0.0, 0.0, -3.0), half=2.0))
    out = render_rays(field, origins, dirs, inner_opacity=True)
    assert out["acc"].mean() > 0.95 and out["acc_inner"].max() < 0.01
    with torch.no_grad():
        z = field.to_world(field.vertex_positions().double())[:, 2]
        field.density[(z > -3.3) & (z < -2.7)] = 30.0  # an opaque slab across the cube, in front of the wall
    field.update_occupancy()
    out = render_rays(field, origins, dirs, inner_opacity=True)
    through = out["acc_inner"] > 0.5  # the rays that cross the slab inside the cube (not those leaving by its sides)
    assert through.float().mean() > 0.5
    torch.testing.assert_close(out["acc_inner"][through], out["acc"][through], atol=1e-3, rtol=0)


def _field_of_density(config: FieldConfig, space, sigma: torch.Tensor) -> VoxelField:
    """A bounded 33^3 field over the unit cube, with the step `space` would choose, whose vertices hold density
    `sigma` (per base voxel) whatever the step and the initial opacity."""
    field = VoxelField(np.array([[0.0, 0, 0], [1, 1, 1]]), (33, 33, 33), config.for_space(space))
    with torch.no_grad():
        field.density.copy_(torch.log(torch.expm1(sigma)) - field.density_shift)
    return field


def test_ndc_fields_march_one_voxel_steps_and_mean_the_same_opacity_per_length():
    ndc = ndc_for_cameras(forward_cameras(), near=1.0, typical_depth=1.5)
    assert FieldConfig().for_space(ndc).step_ratio == 1.0 and FieldConfig().for_space(None).step_ratio == 0.5
    assert FieldConfig(step_ratio=0.25).for_space(ndc).step_ratio == 0.25  # a chosen step is kept
    centred = VoxelField(np.array([[0.0, 0, 0], [1, 1, 1]]), (33, 33, 33), FieldConfig()).vertex_positions() - 0.5
    sigma = 5.0 * torch.exp(-40.0 * (centred**2).sum(-1))  # a ball of matter fading out over a few voxels
    half = _field_of_density(FieldConfig(), None, sigma)
    whole = _field_of_density(FieldConfig(), ndc, sigma)
    assert whole.step_size == 2 * half.step_size
    # pruning keeps the same vertices: its threshold follows the step
    half.update_occupancy()
    whole.update_occupancy()
    assert 0.1 < half.occupancy.float().mean() < 0.6
    assert (half.occupancy != whole.occupancy).float().mean() < 1e-3
    # a slab of constant density lets the same light through at either step
    fog = torch.full((33**3,), 2.0)
    origins = torch.tensor([[0.5, 0.5, -1.0]]).repeat(64, 1) + torch.tensor([0.3, 0.3, 0.0]) * torch.rand(64, 1)
    dirs = torch.tensor([[0.0, 0.0, 1.0]]).repeat(64, 1)
    acc = [render_rays(_field_of_density(FieldConfig(), space, fog), origins, dirs)["acc"] for space in (None, ndc)]
    torch.testing.assert_close(acc[0], acc[1], atol=2e-3, rtol=0)
    assert (acc[0] > 0.5).all()
