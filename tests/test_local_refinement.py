"""The object's finer field on the real tiny-scene field: composited with the frozen scene it renders what the scene
field renders before training, training on the box's rays raises their PSNR, and its mesh is the duck."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from sa3d_blender.core.data.datasets import load_dataset
from sa3d_blender.core.field.field_checkpoint import load_field
from sa3d_blender.core.field.local_refinement import BoxRays, RefineSettings, local_field_from, refine
from sa3d_blender.core.field.rendering import render_rays
from sa3d_blender.core.mesh.object_export import extract_object
from sa3d_blender.core.metrics import mesh_distances
from test_object_export import box_mask
from test_view_cache import tiny_field_path


@pytest.fixture(scope="module")
def duck(tiny_scene):
    field, _, _ = load_field(tiny_field_path(tiny_scene))
    dataset = load_dataset(tiny_scene)
    truth = trimesh.load(dataset.ground_truth.object("duck").mesh_path, force="mesh")
    box = np.stack([truth.bounds[0] - 0.03, truth.bounds[1] + 0.03])
    return field, dataset, truth, box


def test_the_unrefined_local_field_composites_to_the_scene_render(duck):
    """front + T_front * box + T_box * behind, with the box sampled from the scene field, is the scene's own render
    of those rays (up to the box's finer marching)."""
    field, dataset, _, box = duck
    views = dataset.train[:4]
    rays = BoxRays(field, box, dataset.cameras, views, dataset.load_image, "cpu")
    local = local_field_from(field, box, 96**3).field
    assert local.voxel_size < 0.5 * field.voxel_size * field.space.half  # finer than the scene's voxels there
    pick = torch.arange(0, len(rays), max(1, len(rays) // 4000))
    with torch.no_grad():
        composite = rays.composite(local, pick, jitter=False)
        o, d = rays.rays(pick.numpy())
        scene = render_rays(field, o, d)["rgb"]
    mse = float(torch.mean((composite.clamp(0, 1) - scene.clamp(0, 1)) ** 2))
    assert -10 * np.log10(mse) > 30.0, mse


def test_refining_fits_the_photos_better_and_meshes_the_object(duck):
    field, dataset, truth, box = duck
    made = refine(field, box, dataset.cameras, dataset.train, dataset.load_image,
                  RefineSettings(iterations=40, num_voxels=64**3))
    summary = made.summary
    assert summary["iterations"] == 40 and summary["rays"] > 1000
    assert summary["psnr_after"] > summary["psnr_before"] + 0.3, summary
    voxel = field.voxel_size * field.space.half
    mask = box_mask(field, truth.bounds[0] + [-1.5 * voxel, -1.5 * voxel, voxel], truth.bounds[1] + 1.5 * voxel)
    mesh = extract_object(field, mask, local=made)
    threshold = 0.1 * np.linalg.norm(truth.bounds[1] - truth.bounds[0])
    assert mesh_distances(mesh, truth, threshold)["fscore"] >= 0.8
