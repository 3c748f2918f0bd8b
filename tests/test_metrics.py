"""Metrics against values worked out by hand."""

import math

import numpy as np
import pytest
import trimesh

from sa3d_blender.core.metrics import connected_parts, mask_accuracy, mask_iou, mesh_distances, psnr

PRED = np.array([[1, 1, 0], [0, 1, 0]])
GT = np.array([[1, 0, 0], [0, 1, 1]])  # TP 2, FP 1, FN 1, TN 2


def test_iou_and_accuracy_of_small_masks():
    assert mask_iou(PRED, GT) == pytest.approx(2 / 4)
    assert mask_accuracy(PRED, GT) == pytest.approx(4 / 6)


def test_non_zero_labels_count_as_foreground():
    assert mask_iou(PRED * 7, GT.astype(bool)) == pytest.approx(0.5)


def test_two_empty_masks_agree_and_disjoint_masks_do_not():
    empty = np.zeros((4, 5), dtype=bool)
    assert mask_iou(empty, empty) == 1.0
    assert mask_accuracy(empty, empty) == 1.0
    full = ~empty
    assert mask_iou(full, empty) == 0.0
    assert mask_accuracy(full, empty) == 0.0


def test_masks_of_different_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"mask shapes differ: prediction \(2, 3\), ground truth \(3, 2\)"):
        mask_iou(PRED, GT.T)


def test_psnr_of_known_mse():
    gt = np.zeros((8, 8, 3))
    assert psnr(gt + 0.1, gt) == pytest.approx(20.0)  # MSE 0.01
    assert psnr(gt + 5.0, gt, max_val=255.0) == pytest.approx(10 * math.log10(255.0**2 / 25.0))
    assert psnr(gt, gt) == math.inf


def test_identical_meshes_have_zero_distance():
    sphere = trimesh.creation.icosphere(subdivisions=3)
    result = mesh_distances(sphere, sphere.copy(), threshold=0.01)
    assert result == {"chamfer": 0.0, "precision": 1.0, "recall": 1.0, "fscore": 1.0,
                      "normal_consistency": pytest.approx(1.0)}


def test_normal_consistency_of_a_cube_against_a_sphere_inside_it():
    # on the sphere's nearest-point pairs with the cube, |cos| averages well below 1; a copy of the cube scores 1
    cube = trimesh.creation.box(extents=(2, 2, 2))
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    assert mesh_distances(cube, cube.copy(), threshold=0.1)["normal_consistency"] == pytest.approx(1.0)
    assert 0.6 < mesh_distances(sphere, cube, threshold=0.1)["normal_consistency"] < 0.95


def test_connected_parts_counts_pieces_that_share_no_edge():
    two = trimesh.util.concatenate([trimesh.creation.box(), trimesh.creation.box().apply_translation([3, 0, 0])])
    assert connected_parts(two) == 2 and connected_parts(trimesh.creation.icosphere()) == 1
    assert connected_parts(trimesh.Trimesh()) == 0


def test_unit_cube_against_cube_shifted_along_x():
    d = 0.1
    cube = trimesh.creation.box(bounds=[[0, 0, 0], [1, 1, 1]])
    shifted = cube.copy()
    shifted.apply_translation([d, 0, 0])
    # Mean distance from the cube's surface to the shifted one's, face by face (same both ways by symmetry):
    # x=0 face: d; x=1 face (inside the other cube): E[min(d, distance to the face border)] = (1-(1-2d)^3)/6;
    # each of the 4 side faces: d^2/2 (only the strip x<d is off the other surface).
    expected_chamfer = (d + (1 - (1 - 2 * d) ** 3) / 6 + 4 * d**2 / 2) / 6
    above = mesh_distances(cube, shifted, threshold=2 * d, n_points=50000)
    # Distances go to the nearest *sample*, which can only overestimate, by about half the sample spacing.
    assert expected_chamfer - 1e-3 <= above["chamfer"] <= expected_chamfer + 5e-3
    assert above["precision"] == 1.0 and above["recall"] == 1.0 and above["fscore"] == 1.0

    below = mesh_distances(cube, shifted, threshold=d / 2, n_points=50000)
    # Within d/2: nothing of the x=0 face, the border band 1-(1-d)^2 of the x=1 face, 95 % of each side face.
    expected_fraction = (0 + (1 - (1 - d) ** 2) + 4 * 0.95) / 6
    assert below["precision"] == pytest.approx(expected_fraction, abs=0.01)
    assert below["recall"] == pytest.approx(expected_fraction, abs=0.01)
    assert below["fscore"] == pytest.approx(expected_fraction, abs=0.01)


def test_empty_prediction_scores_zero_without_crashing():
    empty = trimesh.Trimesh(vertices=np.zeros((0, 3)), faces=np.zeros((0, 3), dtype=int))
    result = mesh_distances(empty, trimesh.creation.box(), threshold=0.1)
    assert result == {"chamfer": math.inf, "precision": 0.0, "recall": 0.0, "fscore": 0.0, "normal_consistency": 0.0}
