"""Camera import (dataset cameras -> Blender cameras under "NeRF space") and the region <-> pixel click mapping.

The bpy checks run in a subprocess (addon_manifest/bpy_sandbox.py); click_mapping is pure maths tested in-process.
"""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from addon_manifest.bpy_sandbox import run_bpy
from sa3d_blender.blender.click_mapping import (
    frame_homography,
    inside_image,
    order_frame_corners,
    pixel_to_region,
    region_to_pixel,
)
from sa3d_blender.core.data.datasets import load_dataset

# --- click_mapping (pure) ---------------------------------------------------------------------------------------------

# Looking through a 96x64 camera whose frame fills region x 100..580, y 40..360 (region y grows upwards)
RECT = np.array([[100, 360], [580, 360], [580, 40], [100, 40]], dtype=float)  # TL, TR, BR, BL


def test_click_in_camera_view_maps_to_pixel_with_y_flipped():
    # 5 region px per image px; region (110, 355) is 2 px right of the left edge, 1 px below the top edge
    pixel = region_to_pixel(RECT, 96, 64, [(110, 355), (340, 200), (580, 40)])
    np.testing.assert_allclose(pixel, [[2, 1], [48, 32], [96, 64]], atol=1e-9)


def test_pixel_to_region_inverts_region_to_pixel():
    pixels = np.array([[0.5, 0.5], [95.5, 63.5], [10.25, 40.75]])
    np.testing.assert_allclose(region_to_pixel(RECT, 96, 64, pixel_to_region(RECT, 96, 64, pixels)), pixels, atol=1e-9)
    np.testing.assert_allclose(pixel_to_region(RECT, 96, 64, [[0.5, 0.5]]), [[102.5, 357.5]], atol=1e-9)


def test_frame_seen_at_an_angle_maps_exactly_like_the_projection():
    # A 4x3 "image" plane at z=5 seen by a tilted pinhole: the homography from its 4 projected corners must map the
    # projection of any point of the plane back to that point's image pixel.
    width, height = 400, 300
    yaw = np.deg2rad(25)
    rotation = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])

    def project(pixel):  # image pixel -> point on the plane -> viewer's region coordinates
        point = np.array([pixel[0] / 100 - 2, 1.5 - pixel[1] / 100, 5.0])
        p = rotation @ point + [0.3, -0.2, 1.0]
        return 800 * p[:2] / p[2] + [640, 360]

    corners = np.array([project(c) for c in [(0, 0), (width, 0), (width, height), (0, height)]])
    samples = np.array([[37.0, 250.0], [200.0, 150.0], [399.0, 1.0]])
    region = np.array([project(s) for s in samples])
    np.testing.assert_allclose(region_to_pixel(corners, width, height, region), samples, atol=1e-6)


def test_degenerate_frame_is_rejected():
    with pytest.raises(ValueError, match="degenerate"):
        frame_homography(np.array([[0, 0], [1, 0], [2, 0], [3, 0]]), 96, 96)


def test_inside_image_excludes_the_far_edges():
    assert inside_image([[0, 0], [95.9, 63.9], [96, 10], [-0.1, 5], [5, 64]], 96, 64).tolist() == [
        True, True, False, False, False
    ]


def test_frame_corners_are_ordered_by_position_not_by_api_order():
    # Blender's view_frame order (TR, BR, BL, TL) shuffled
    local = np.array([[-1, -0.5, -2], [1, 0.5, -2], [-1, 0.5, -2], [1, -0.5, -2]])
    assert order_frame_corners(local).tolist() == [2, 1, 3, 0]


# --- camera import (bpy subprocess) -----------------------------------------------------------------------------------

CAMERA_IMPORT_SNIPPET = """
import numpy as np
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector
from sa3d_blender.blender.camera_import import import_cameras, use_camera
from sa3d_blender.blender.click_mapping import order_frame_corners, region_to_pixel
from sa3d_blender.core.data.cameras import Cameras
from sa3d_blender.core.data.datasets import load_dataset

dataset = load_dataset(DATASET)
cams = dataset.cameras
if PERTURB:  # fx != fy, principal point off centre, non-square image
    cams = Cameras(c2w=cams.c2w, fx=cams.fx, fy=cams.fy * 1.25, cx=cams.cx + 6.5, cy=cams.cy - 4.0,
                   width=cams.width + 24, height=cams.height, names=cams.names, image_paths=cams.image_paths)
points = np.load(POINTS)
scene = bpy.context.scene
space, objects = import_cameras(scene, cams, dataset.bbox, DATASET)
space.location, space.rotation_euler, space.scale = SPACE_LOCATION, SPACE_ROTATION, SPACE_SCALE
bpy.context.view_layer.update()
space_matrix = np.array(space.matrix_world)
world = points @ space_matrix[:3, :3].T + space_matrix[:3, 3]
errors, frame_errors, names = [], [], []
for i, obj in enumerate(objects):
    use_camera(scene, obj)
    width, height = int(cams.width[i]), int(cams.height[i])
    expected, depth = cams.project(i, points)
    ndc = np.array([tuple(world_to_camera_view(scene, obj, Vector(p))) for p in world])
    got = np.c_[ndc[:, 0] * width, (1 - ndc[:, 1]) * height]
    front = depth > 0.05
    errors.append(float(np.abs(got - expected)[front].max()))
    # click mapping through the real camera frame: corners as world_to_camera_view places them, scaled to a region
    local = list(obj.data.view_frame(scene=scene))
    order = order_frame_corners(np.array([tuple(v) for v in local]))
    corners = np.array([tuple(world_to_camera_view(scene, obj, obj.matrix_world @ local[k]))[:2] for k in order])
    corners *= [640, 480]
    clicked = region_to_pixel(corners, width, height, ndc[front, :2] * [640, 480])
    frame_errors.append(float(np.abs(clicked - expected[front]).max()))
    names.append(obj["sa3d_view"])
report({"errors": errors, "frame_errors": frame_errors, "names": names, "parent_ok": all(o.parent == space for o in objects),
        "backgrounds": sum(len(o.data.background_images) for o in objects)})
"""


@pytest.fixture(scope="module")
def gt_points(tiny_scene, tmp_path_factory):
    dataset = load_dataset(tiny_scene)
    vertices = np.concatenate([trimesh.load(o.mesh_path, force="mesh").vertices for o in dataset.ground_truth.objects])
    path = tmp_path_factory.mktemp("points") / "points.npy"
    np.save(path, vertices[:: max(1, len(vertices) // 400)])
    return dataset, path


@pytest.mark.parametrize(
    "perturb, location, rotation, scale",
    [
        (False, (0, 0, 0), (0, 0, 0), (1, 1, 1)),
        (False, (1.5, -2.0, 0.7), (0.3, -0.2, 1.1), (2.5, 2.5, 2.5)),
        (True, (0.4, 0.1, -0.3), (0.0, 0.5, 0.2), (0.5, 0.5, 0.5)),
    ],
    ids=["identity", "moved-rotated-scaled-space", "anisotropic-offcentre-intrinsics"],
)
def test_blender_cameras_project_gt_vertices_like_the_dataset(gt_points, tiny_scene, tmp_path, perturb, location, rotation, scale):
    dataset, points = gt_points
    result = run_bpy(
        CAMERA_IMPORT_SNIPPET,
        tmp_path,
        variables={"DATASET": str(tiny_scene), "POINTS": str(points), "PERTURB": perturb,
                   "SPACE_LOCATION": location, "SPACE_ROTATION": rotation, "SPACE_SCALE": scale},
    )
    assert result["names"] == dataset.cameras.names
    assert result["parent_ok"]
    assert result["backgrounds"] == len(dataset.cameras)
    assert max(result["errors"]) < 0.5, result["errors"]
    assert max(result["frame_errors"]) < 0.5, result["frame_errors"]
