"""Where a dataset camera's image lies in a 3D viewport region (for mapping clicks and drawing the overlay)."""

from __future__ import annotations

import numpy as np
from bpy_extras.view3d_utils import location_3d_to_region_2d

from .click_mapping import order_frame_corners


def camera_frame_in_region(scene, camera, region, rv3d) -> np.ndarray | None:
    """[4,2] region xy of the camera frame's top-left, top-right, bottom-right, bottom-left corners; None when a
    corner is behind the viewer. Uses the scene's render resolution, so call camera_import.use_camera first."""
    local = [corner for corner in camera.data.view_frame(scene=scene)]
    corners = []
    for k in order_frame_corners(np.array([tuple(c) for c in local])):
        point = location_3d_to_region_2d(region, rv3d, camera.matrix_world @ local[k])
        if point is None:
            return None
        corners.append((point.x, point.y))
    return np.array(corners)


def window_region(area):
    """The main drawing region of a 3D View area (operators started from the sidebar get the UI region instead)."""
    return next(region for region in area.regions if region.type == "WINDOW")


def image_size(camera) -> tuple[int, int]:
    return int(camera["sa3d_width"]), int(camera["sa3d_height"])
