"""Blender round trip: cameras read by load_dataset project the ground-truth meshes onto their masks in every view."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from sa3d_blender.core.data.datasets import load_dataset

POINTS_PER_OBJECT = 3000


# A mask pixel holds the object seen through its centre, so a point between four pixel centres can only be judged
# against those four: shifting the point by (+-0.5, +-0.5) px and flooring gives exactly them.
SURROUNDING_CENTRES = [(-0.5, -0.5), (-0.5, 0.5), (0.5, -0.5), (0.5, 0.5)]


def _mask_agreement(scene, shifts=((0.0, 0.0),), mask_view_offset: int = 0) -> dict[str, float]:
    """Per object: fraction of its surface samples, over all views, that land inside the image on a pixel labelled
    with that object or with an object nearer to the camera (an occluder).

    A sample agrees when the pixel under its projection moved by any of `shifts` (x, y in pixels) agrees.
    `mask_view_offset` pairs each view's projection with another view's mask (a control that must fail).
    """
    dataset = load_dataset(scene)
    cameras, truth = dataset.cameras, dataset.ground_truth
    meshes = {o.index: trimesh.load(o.mesh_path) for o in truth.objects}
    samples = {i: trimesh.sample.sample_surface(m, POINTS_PER_OBJECT, seed=i)[0] for i, m in meshes.items()}
    hits = dict.fromkeys(meshes, 0)
    totals = dict.fromkeys(meshes, 0)
    for view in range(len(cameras)):
        mask = truth.load_mask((view + mask_view_offset) % len(cameras))
        height, width = mask.shape
        nearest = {k: cameras.project(view, m.vertices)[1].min() for k, m in meshes.items()}
        for index, points in samples.items():
            xy, depth = cameras.project(view, points)
            inside = (depth > 0) & (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
            xy, depth = xy[inside], depth[inside]
            agrees = np.zeros(len(xy), bool)
            for shift in shifts:
                # pixel (j, i) covers [j, j+1) x [i, i+1); clip keeps shifted lookups in the image
                cols = np.clip(np.floor(xy[:, 0] + shift[0]).astype(int), 0, width - 1)
                rows = np.clip(np.floor(xy[:, 1] + shift[1]).astype(int), 0, height - 1)
                labels = mask[rows, cols]
                agrees |= labels == index
                for other, other_depth in nearest.items():
                    if other != index:
                        agrees |= (labels == other) & (other_depth < depth)
            hits[index] += int(agrees.sum())
            totals[index] += int(inside.sum())
    return {o.name: hits[o.index] / totals[o.index] for o in truth.objects}


def test_loaded_dataset_matches_the_written_scene(tiny_scene):
    dataset = load_dataset(tiny_scene)
    transforms = json.loads((tiny_scene / "transforms.json").read_text())
    assert len(dataset.cameras) == 24 and len(dataset.train) == 18 and len(dataset.test) == 6
    # no aabb in the file: the inner region from where the cameras look must still hold every object
    for info in dataset.ground_truth.objects:
        vertices = trimesh.load(info.mesh_path, force="mesh").vertices
        assert np.all(vertices >= dataset.bbox[0]) and np.all(vertices <= dataset.bbox[1]), info.name
    np.testing.assert_allclose(dataset.cameras.c2w[5], transforms["frames"][5]["transform_matrix"])
    assert [o.name for o in dataset.ground_truth.objects] == ["duck", "box", "can"]
    assert dataset.load_image(0).shape == (96, 96, 3)


def test_ground_truth_meshes_project_onto_their_masks_tiny(tiny_scene):
    agreement = _mask_agreement(tiny_scene, SURROUNDING_CENTRES)
    assert min(agreement.values()) >= 0.97, agreement
    # the same check against the wrong views' masks fails: it really tests the cameras
    assert max(_mask_agreement(tiny_scene, SURROUNDING_CENTRES, mask_view_offset=1).values()) < 0.8


def test_pixel_centres_follow_the_half_pixel_convention(tiny_scene):
    """Looking up the pixel under each projected point agrees best with no shift: a half-pixel error in cx/cy, in the
    mask sampling or in the row flip of the masks would move the optimum to +-0.5 px."""

    def overall(shift):
        return np.mean(list(_mask_agreement(tiny_scene, [shift]).values()))

    centred = overall((0.0, 0.0))
    assert centred > 0.93
    for shift in [(0.5, 0.0), (-0.5, 0.0), (0.0, 0.5), (0.0, -0.5)]:
        assert centred > overall(shift) + 0.005, shift


@pytest.mark.slow
def test_ground_truth_meshes_project_onto_their_masks_demo(demo_scene):
    agreement = _mask_agreement(demo_scene, SURROUNDING_CENTRES)
    assert min(agreement.values()) >= 0.97, agreement
