"""Lens distortion: rays of distorted cameras reproject onto their own pixels, and a distorted image lines up."""

from __future__ import annotations

import numpy as np
import pytest

from sa3d_blender.core.data.cameras import Cameras
from sa3d_blender.core.data.lens import distort, undistort

# the fox capture's phone lens (k1, k2, p1, p2 from its transforms.json), a strong barrel lens, and a fisheye
PHONE = [0.0578421, -0.0805099, 0, 0, -0.000980296, 0.00015575]
BARREL = [-0.3, 0.1, 0.01, 0, 0.002, -0.001]
FISHEYE = [0.05, -0.01, 0.002, -0.0005, 0, 0]


def camera(coeffs, fisheye=False, width=400, height=300, focal=250.0) -> Cameras:
    c2w = np.eye(4)
    c2w[:3, 3] = (0.3, -0.2, 4.0)
    return Cameras(c2w=c2w[None], fx=[focal], fy=[focal * 1.01], cx=[width / 2 + 3.5], cy=[height / 2 - 2.25],
                   width=[width], height=[height], names=["v"], image_paths=[None], distortion=[coeffs], fisheye=[fisheye])


@pytest.mark.parametrize("coeffs, fisheye", [(PHONE, False), (BARREL, False), (FISHEYE, True)])
def test_rays_of_a_distorted_camera_reproject_onto_their_pixels(coeffs, fisheye):
    cams = camera(coeffs, fisheye)
    origins, dirs = cams.pixel_rays(0)
    points = origins + dirs * np.random.default_rng(0).uniform(1, 5, size=(len(dirs), 1))
    xy, depth = cams.project(0, points)
    w, h = 400, 300
    pixel = np.arange(w * h)
    expected = np.stack([pixel % w + 0.5, pixel // w + 0.5], axis=1)
    assert np.all(depth > 0)
    assert np.abs(xy - expected).max() < 1e-4


@pytest.mark.parametrize("coeffs, fisheye", [(PHONE, False), (BARREL, False), (FISHEYE, True)])
def test_undistort_inverts_distort(coeffs, fisheye):
    x, y = np.meshgrid(np.linspace(-0.7, 0.7, 41), np.linspace(-0.5, 0.5, 31))
    xd, yd = distort(x, y, np.array(coeffs), fisheye)
    assert np.abs(xd - x).max() > 1e-3  # the lens really moves points
    xu, yu = undistort(xd, yd, np.array(coeffs), fisheye)
    assert np.abs(xu - x).max() < 1e-9 and np.abs(yu - y).max() < 1e-9


def test_distortion_moves_border_pixels_by_several_pixels_on_the_fox_lens():
    # what ignoring the lens cost: the same ray lands this far from where a pinhole puts it
    pinhole, lens = camera([0] * 6, width=1080, height=1920, focal=1375.5), camera(PHONE, width=1080, height=1920, focal=1375.5)
    corner = np.array([[0.5], [0.5]])
    _, d_lens = lens.rays(np.array([0]), corner[0], corner[1])
    xy, _ = pinhole.project(0, lens.c2w[0, :3, 3] + d_lens * 3)
    assert np.hypot(*(xy[0] - 0.5)) > 5


def test_a_distorted_image_of_a_known_scene_lines_up():
    """Render a checkerboard plane through the distorted camera by ray casting; the corners of the checker must appear
    where `project` (with the lens) puts them, and not where a pinhole would."""
    cams = camera(BARREL, width=320, height=240, focal=200.0)
    origins, dirs = cams.pixel_rays(0)
    t = (0.0 - origins[:, 2]) / dirs[:, 2]  # plane z = 0, camera at z = 4 looking down -z
    hit = origins + dirs * t[:, None]
    square = 0.25
    image = ((np.floor(hit[:, 0] / square) + np.floor(hit[:, 1] / square)) % 2).reshape(240, 320)
    # checker corners near the image border, projected with the lens model
    corners = np.array([[x, y, 0.0] for x in np.arange(-8, 9) * square for y in np.arange(-8, 9) * square])
    xy, _ = cams.project(0, corners)
    inside = (xy[:, 0] > 3) & (xy[:, 0] < 317) & (xy[:, 1] > 3) & (xy[:, 1] < 237)
    pinhole = camera([0] * 6, width=320, height=240, focal=200.0)
    xy_pinhole, _ = pinhole.project(0, corners)
    moved = inside & (np.hypot(*(xy - xy_pinhole).T) > 3)
    assert moved.sum() >= 10
    for x, y in xy[moved]:
        # a checker corner: the four pixels around it alternate colour
        c, r = int(round(x)), int(round(y))
        patch = image[r - 2:r + 2, c - 2:c + 2]
        assert patch[0, 0] == patch[-1, -1] != patch[0, -1] == patch[-1, 0], (x, y)
