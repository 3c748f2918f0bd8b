"""Cameras: hand-computed projections, rays through pixel centres, subset / index, rigid-pose checks."""

from __future__ import annotations

import numpy as np
import pytest

from sa3d_blender.core.data.cameras import Cameras, rigid_pose_problem
from sa3d_blender.core.errors import PromptError


def make_cameras(c2w_list, fx=100.0, fy=100.0, cx=50.0, cy=40.0, width=100, height=80) -> Cameras:
    n = len(c2w_list)
    return Cameras(
        c2w=np.array(c2w_list, dtype=float),
        fx=np.full(n, fx),
        fy=np.full(n, fy),
        cx=np.full(n, cx),
        cy=np.full(n, cy),
        width=np.full(n, width),
        height=np.full(n, height),
        names=[f"view{k}" for k in range(n)],
        image_paths=[None] * n,
    )


def translation(x, y, z) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = (x, y, z)
    return m


def random_rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_camera_on_z_axis_projects_hand_computed_pixels():
    cameras = make_cameras([translation(0, 0, 5)])
    xy, depth = cameras.project(0, np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0], [-2, -1, 3], [0, 0, 6]]))
    # x = cx + fx*X/d, y = cy - fy*Y/d (image rows grow downwards, camera +y is up)
    np.testing.assert_allclose(xy[:4], [[70, 40], [50, 20], [50, 40], [50 - 100, 40 + 50]])
    np.testing.assert_allclose(depth, [5, 5, 5, 2, -1])


def test_off_centre_principal_point_shifts_pixels():
    cameras = make_cameras([translation(0, 0, 5)], cx=30.0, cy=20.0, fy=50.0)
    xy, _ = cameras.project(0, np.array([[1.0, 1.0, 0.0]]))
    np.testing.assert_allclose(xy, [[30 + 20, 20 - 10]])


def test_camera_looking_along_minus_x_projects_hand_computed_pixels():
    c2w = np.eye(4)
    c2w[:3, 0] = (0, 0, -1)  # right
    c2w[:3, 1] = (0, 1, 0)  # up
    c2w[:3, 2] = (1, 0, 0)  # back: the camera looks along -x
    c2w[:3, 3] = (5, 0, 0)
    cameras = make_cameras([c2w])
    xy, depth = cameras.project(0, np.array([[0, 0, -1], [0, 1, 0], [3, 0, 0]]))
    np.testing.assert_allclose(xy, [[70, 40], [50, 20], [50, 40]])
    np.testing.assert_allclose(depth, [5, 5, 2])


def test_projection_equals_opencv_pinhole_formula():
    c2w = translation(0.3, -2.0, 1.5)
    c2w[:3, :3] = random_rotation(0)
    cameras = make_cameras([c2w], fx=120.0, fy=110.0, cx=47.0, cy=33.0)
    # the same camera in OpenCV axes (x right, y down, z forward): flip the y and z columns
    c2w_cv = c2w.copy()
    c2w_cv[:3, 1:3] *= -1
    points = np.random.default_rng(1).normal(size=(50, 3))
    local = (points - c2w_cv[:3, 3]) @ c2w_cv[:3, :3]
    k = np.array([[120.0, 0, 47.0], [0, 110.0, 33.0], [0, 0, 1]])
    homogeneous = local @ k.T
    expected = homogeneous[:, :2] / homogeneous[:, 2:]
    xy, depth = cameras.project(0, points)
    np.testing.assert_allclose(xy, expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(depth, local[:, 2])


def test_ray_of_each_pixel_passes_through_its_centre():
    c2w = translation(1.0, 2.0, -3.0)
    c2w[:3, :3] = random_rotation(2)
    cameras = make_cameras([c2w], fx=90.0, fy=95.0, cx=41.0, cy=29.0, width=64, height=48)
    origins, directions = cameras.pixel_rays(0)
    assert origins.shape == directions.shape == (64 * 48, 3)
    assert origins.dtype == directions.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(origins, np.broadcast_to(c2w[:3, 3], origins.shape), atol=1e-6)
    for row, col in [(0, 0), (0, 63), (47, 0), (47, 63), (20, 31)]:
        k = row * 64 + col
        point = origins[k].astype(float) + 3.0 * directions[k].astype(float)
        xy, depth = cameras.project(0, point[None])
        np.testing.assert_allclose(xy[0], [col + 0.5, row + 0.5], atol=1e-4)
        assert depth[0] > 0


def test_subset_keeps_the_chosen_views_in_order():
    cameras = make_cameras([translation(0, 0, z) for z in (1, 2, 3, 4)])
    picked = cameras.subset([3, 1])
    assert picked.names == ["view3", "view1"] and len(picked) == 2
    np.testing.assert_allclose(picked.c2w[:, 2, 3], [4, 2])
    assert picked.distortion.shape == (2, 6)
    assert cameras.subset(np.array([False, True, True, False])).names == ["view1", "view2"]


def test_index_finds_a_view_and_names_valid_views_for_an_unknown_one():
    cameras = make_cameras([translation(0, 0, z) for z in (1, 2, 3)])
    assert cameras.index("view2") == 2
    with pytest.raises(PromptError, match=r"unknown view 'view9'.*3 views.*view0, view1, view2"):
        cameras.index("view9")


def test_duplicate_names_are_rejected():
    with pytest.raises(ValueError, match="unique"):
        Cameras(np.stack([np.eye(4)] * 2), [1, 1], [1, 1], [0, 0], [0, 0], [2, 2], [2, 2], ["a", "a"], [None, None])


@pytest.mark.parametrize(
    "matrix, problem",
    [
        (np.eye(4)[:3], "shape 3x4"),
        (np.diag([1.0, 1.0, np.nan, 1.0]), "non-finite"),
        (np.diag([2.0, 2.0, 2.0, 1.0]), "scaled"),
        (np.array([[1, 0.2, 0, 0], [0, 0.98, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]), "not orthonormal"),
        (np.diag([1.0, 1.0, -1.0, 1.0]), "reflection"),
        (np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1.0]]), "bottom row"),
    ],
)
def test_rigid_pose_problem_names_what_is_wrong(matrix, problem):
    assert problem in rigid_pose_problem(matrix)


def test_rigid_pose_with_print_rounding_is_accepted():
    c2w = translation(1, 2, 3)
    c2w[:3, :3] = np.round(random_rotation(3), 6)
    assert rigid_pose_problem(c2w) is None
