"""Viewport region <-> dataset-camera pixel mapping from the camera frame's corners in region space (pure maths, no bpy).

The camera frame is a planar rectangle, so its image in the viewport is related to the camera image by a homography;
this stays exact when the viewport looks through the camera (a plain rectangle) and when it looks at the frame at an angle.
Region coordinates are Blender's: origin bottom-left of the region, y up. Pixels: origin top-left corner, y down.
"""

from __future__ import annotations

import numpy as np


def frame_homography(corners: np.ndarray, width: int, height: int) -> np.ndarray:
    """3x3 map region xy -> pixel xy, given the frame corners in region space ordered top-left, top-right,
    bottom-right, bottom-left (as the camera sees them) and the image size in pixels."""
    source = np.asarray(corners, dtype=np.float64).reshape(4, 2)
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
    # Direct linear transform with h33 = 1: two equations per corner, eight unknowns
    rows, rhs = [], []
    for (x, y), (u, v) in zip(source, target):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    try:
        h = np.linalg.solve(np.array(rows), np.array(rhs))
    except np.linalg.LinAlgError:
        raise ValueError("camera frame is degenerate in this view (seen edge-on or off screen)") from None
    return np.append(h, 1.0).reshape(3, 3)


def apply_homography(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points [P,2] mapped through a 3x3 homography."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    mapped = np.c_[points, np.ones(len(points))] @ np.asarray(matrix).T
    return mapped[:, :2] / mapped[:, 2:3]


def region_to_pixel(corners: np.ndarray, width: int, height: int, region_xy) -> np.ndarray:
    """Pixel xy [P,2] (x right, y down, top-left corner origin) of region points [P,2]."""
    return apply_homography(frame_homography(corners, width, height), region_xy)


def pixel_to_region(corners: np.ndarray, width: int, height: int, pixel_xy) -> np.ndarray:
    """Region xy [P,2] of pixel points [P,2]: where to draw a click or a mask corner."""
    return apply_homography(np.linalg.inv(frame_homography(corners, width, height)), pixel_xy)


def inside_image(pixel_xy, width: int, height: int) -> np.ndarray:
    """[P] bool: which pixel points fall on the image (SAM ignores clicks outside it)."""
    pixel_xy = np.asarray(pixel_xy, dtype=np.float64).reshape(-1, 2)
    return (pixel_xy[:, 0] >= 0) & (pixel_xy[:, 0] < width) & (pixel_xy[:, 1] >= 0) & (pixel_xy[:, 1] < height)


def order_frame_corners(local_corners: np.ndarray) -> np.ndarray:
    """Indices that put camera-local frame corners (Blender's Camera.view_frame) in top-left, top-right,
    bottom-right, bottom-left order, judged by their local x (right) and y (up) rather than trusting the API's order."""
    local = np.asarray(local_corners, dtype=np.float64)[:, :2]
    centre = local.mean(axis=0)
    left = local[:, 0] < centre[0]
    top = local[:, 1] > centre[1]
    order = [np.flatnonzero(left & top), np.flatnonzero(~left & top), np.flatnonzero(~left & ~top),
             np.flatnonzero(left & ~top)]
    if any(len(index) != 1 for index in order):
        raise ValueError("camera frame corners do not form a rectangle")
    return np.array([index[0] for index in order])
