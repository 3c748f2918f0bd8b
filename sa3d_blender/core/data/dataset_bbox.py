"""Region to reconstruct when a dataset does not give one: from where the cameras look, or from LLFF depth bounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .cameras import Cameras

# Smallest eigenvalue (per camera) of the normal matrix of the axis-intersection problem below which the optical
# axes count as parallel (a spread of about 2.5 degrees): their closest point is then too ill-defined to centre on.
PARALLEL_AXES = 1e-3


def bbox_from_cameras(cameras: Cameras, source: Path) -> np.ndarray:
    """Cube [2,3] centred on the point closest to all optical axes (least squares) for inward-facing captures.

    Half-size: median over views of distance-to-centre x tan(half the wider field of view), i.e. the half-width of
    what a typical view sees at the centre's depth. For the NeRF synthetic scenes (cameras at radius 4, 40 degree
    field of view) this gives about 1.45, matching their usual [-1.5, 1.5] box. The box can be loose; the field's
    occupancy grid skips the empty part.
    """
    centres = cameras.c2w[:, :3, 3]
    axes = -cameras.c2w[:, :3, 2]
    # sum over views of the projector onto the plane normal to the axis: |P (x - o)|^2 is the squared axis distance
    projectors = np.eye(3) - axes[:, :, None] * axes[:, None, :]
    normal = projectors.sum(axis=0)
    if np.linalg.eigvalsh(normal)[0] / len(cameras) < PARALLEL_AXES:
        raise DatasetError(
            source,
            "cannot place the scene bounding box: the camera axes are (nearly) parallel, so they do not point at a "
            "common centre; add an 'aabb' [[xmin, ymin, zmin], [xmax, ymax, zmax]] to the file",
        )
    centre = np.linalg.solve(normal, np.einsum("nij,nj->i", projectors, centres))
    distances = np.linalg.norm(centres - centre, axis=1)
    tan_half_fov = np.maximum(0.5 * cameras.width / cameras.fx, 0.5 * cameras.height / cameras.fy)
    half = float(np.median(distances * tan_half_fov))
    return np.stack([centre - half, centre + half])


def bbox_from_depth_range(cameras: Cameras, near: np.ndarray, far: np.ndarray) -> np.ndarray:
    """Axis-aligned box [2,3] around every camera's view frustum between its near and far depth."""
    corners = []
    for i in range(len(cameras)):
        w, h = float(cameras.width[i]), float(cameras.height[i])
        # image corners as camera-space directions at depth 1 (OpenGL: -z forward, +y up)
        u = (np.array([0.0, w, 0.0, w]) - cameras.cx[i]) / cameras.fx[i]
        v = -(np.array([0.0, 0.0, h, h]) - cameras.cy[i]) / cameras.fy[i]
        at_unit_depth = np.stack([u, v, -np.ones(4)], axis=1)
        local = np.concatenate([at_unit_depth * near[i], at_unit_depth * far[i]])
        corners.append(local @ cameras.c2w[i, :3, :3].T + cameras.c2w[i, :3, 3])
    corners = np.concatenate(corners)
    return np.stack([corners.min(axis=0), corners.max(axis=0)])


def bbox_from_points(points: np.ndarray, around: np.ndarray | None) -> np.ndarray:
    """The box [2,3] of the sparse points near `around` (the camera-derived box, enlarged by half; None: all points):
    the 2nd to 98th percentile per axis, so that a few stray points or the walls of the room do not stretch it.
    `around` itself when too few points lie there."""
    near = points
    if around is not None:
        centre, half = around.mean(axis=0), 0.75 * (around[1] - around[0])
        near = points[np.all(np.abs(points - centre) <= half, axis=1)]
    if len(near) < 20:
        if around is None:
            raise DatasetError(Path("points"), f"only {len(near)} sparse points: too few to place the scene")
        return around
    lo, hi = np.percentile(near, [2, 98], axis=0)
    margin = 0.1 * (hi - lo).max()
    return np.stack([lo - margin, hi + margin])
