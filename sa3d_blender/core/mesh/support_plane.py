"""Cut an object's 3-D mask off what it rests on: the plane of the floor or table around it.

The views see an object and the floor meet, and the floor under the object is never seen, so SA3D's solid mask
holds a slab of the floor under the object. Around the object the floor is seen and voted "not this object": its
seen, opaque vertices in a ring just outside the mask lie on one plane, its top surface. That plane, fitted
robustly, is cut away with everything on its far side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

RING_VOXELS = 4  # how far around the mask the support is looked for
RANSAC_TRIES = 256
MIN_RING_POINTS = 50
MIN_INLIER_FRACTION = 0.5  # of the ring's top-surface points: the support must be most of what surrounds the object
MAX_OBJECT_BELOW = 0.5  # of the object's opaque mask beyond the plane (the slab is some): more, and it is not a support
PLANE_TOLERANCE_VOXELS = 1.5  # inlier distance, in voxels
# a support faces the cameras' side: a plane tilted further than this from "towards the cameras" is the side of a
# neighbour (the demo ball's was cut in half by the cone beside it), not a floor or a table
MAX_TILT_DEGREES = 35.0


@dataclass(frozen=True)
class SupportPlane:
    normal: np.ndarray  # unit [3], pointing to the object's side
    offset: float  # plane: normal . p = offset
    inliers: float  # fraction of the ring's points on the plane

    def height(self, points: np.ndarray) -> np.ndarray:
        """Signed distance above the plane (positive on the object's side)."""
        return points @ self.normal - self.offset


def find_support(mask: np.ndarray, opacity: np.ndarray, level: float, positions: np.ndarray, voxel: float,
                 cameras: np.ndarray | None = None, seen: np.ndarray | None = None) -> SupportPlane | None:
    """The plane the object rests on, or None when its surroundings hold none.

    mask: bool [X,Y,Z] the object's solid mask; opacity: [X,Y,Z] the field's surface opacity, matter above `level`;
    positions: [X,Y,Z,3] world positions of the vertices; voxel: a voxel's world size there; cameras: [N,3] centres
    of the views (a support is seen from above: "up" is towards them), else up is from the ring towards the object;
    seen: bool [X,Y,Z], the mask's matter the views see: the object's body, when it holds any (else all its matter)."""
    opaque = opacity > level
    ring = ndimage.binary_dilation(mask, iterations=RING_VOXELS) & ~mask & opaque
    body_mask = mask & opaque
    if seen is not None and (body_mask & seen).any():
        body_mask &= seen
    body = positions[body_mask]
    if ring.sum() < MIN_RING_POINTS or len(body) == 0:
        return None
    if cameras is not None and len(cameras):
        towards = np.asarray(cameras, dtype=np.float64) - body.mean(axis=0)
        up = (towards / np.maximum(np.linalg.norm(towards, axis=1, keepdims=True), 1e-12)).mean(axis=0)
    else:
        up = body.mean(axis=0) - positions[ring].mean(axis=0)
    up = up / max(float(np.linalg.norm(up)), 1e-12)
    # an unseen floor is opaque several voxels deep; its top (what the cameras see) is where the next vertex up is
    # empty: step along the grid axis closest to up, to where the opacity crosses the level between the two vertices
    # (whole vertices put a ring a few voxels wide on steps a voxel high: planes tilted by 8 degrees on the demo)
    axis, sign = _grid_step_towards(positions, up)
    top = ring & ~np.roll(opaque, -sign, axis=axis)
    below_op, above_op = opacity[top], np.roll(opacity, -sign, axis=axis)[top]
    t = np.clip((below_op - level) / np.maximum(below_op - above_op, 1e-12), 0.0, 1.0)[:, None]
    points = positions[top] + t * (np.roll(positions, -sign, axis=axis)[top] - positions[top])
    # what the object rests on lies below most of it: the tops of taller neighbours beside it do not
    points = points[points @ up <= np.median(body @ up)]
    if len(points) < MIN_RING_POINTS:
        return None
    min_cos = np.cos(np.radians(MAX_TILT_DEGREES))
    rng = np.random.default_rng(0)
    tolerance = PLANE_TOLERANCE_VOXELS * voxel
    best, best_count = None, 0
    for _ in range(RANSAC_TRIES):
        a, b, c = points[rng.choice(len(points), 3, replace=False)]
        normal = np.cross(b - a, c - a)
        length = np.linalg.norm(normal)
        if length < 1e-12:
            continue
        normal /= length
        if abs(float(normal @ up)) < min_cos:
            continue
        count = int((np.abs((points - a) @ normal) < tolerance).sum())
        if count > best_count:
            best, best_count = (normal, float(a @ normal)), count
    if best is None or best_count < MIN_INLIER_FRACTION * len(points):
        return None
    normal, offset = best
    on_plane = points[np.abs(points @ normal - offset) < tolerance]
    centre = on_plane.mean(axis=0)
    normal = np.linalg.svd(on_plane - centre, full_matrices=False)[2][-1]  # least squares on the inliers
    if normal @ up < 0:
        normal = -normal
    offset = float(centre @ normal)
    if ((body @ normal - offset) < -tolerance).mean() > MAX_OBJECT_BELOW:
        return None  # the object reaches well through the plane: a wall or a shelf behind it, not its support
    return SupportPlane(normal, offset, best_count / len(points))


def _grid_step_towards(positions: np.ndarray, direction: np.ndarray) -> tuple[int, int]:
    """(axis, +1/-1): the grid step whose world displacement points most along `direction`."""
    centre = tuple(n // 2 for n in positions.shape[:3])
    best, best_dot = (2, 1), -np.inf
    for axis in range(3):
        step = np.zeros(3, dtype=int)
        step[axis] = 1
        delta = positions[tuple(np.add(centre, step))] - positions[centre]
        dot = float(delta @ direction / (np.linalg.norm(delta) + 1e-12))
        for sign in (1, -1):
            if sign * dot > best_dot:
                best, best_dot = (axis, sign), sign * dot
    return best


# Under the object's own footprint the cut goes this many voxels below the plane: a field's floor is fuzzy, its level
# crossing 1-1.5 cm above the true floor on a demo field, while the object's base reaches down to the true floor.
# Demo field, cut at +0.5 / -0.5 / -1.5 / -2.5 voxels: mean F@1% 0.611 / 0.636 / 0.652 / 0.664, textured PSNR
# 19.4 / 20.7 / 21.4 / 22.1 dB; outside the footprint the cut stays above the plane, so no skirt of floor comes with it
BASE_VOXELS = 1.5
FOOTPRINT_VOXELS = 3.0  # the object's footprint is its matter up to this high above the plane


def height_above_cut(mask: np.ndarray, positions: np.ndarray, plane: SupportPlane, voxel: float,
                     opaque: np.ndarray | None = None) -> np.ndarray:
    """float [X,Y,Z]: each vertex's height above where the object is cut off its support, in voxels. The cut runs half
    a voxel above the plane (the floor's own surface); with `opaque` (bool [X,Y,Z]), BASE_VOXELS below it in the
    columns under the object's base. A height, not a yes/no per vertex, so that the base can be placed between two
    vertex layers (cap_opacity)."""
    height = plane.height(positions) / voxel
    above = height - 0.5
    if opaque is not None:
        axis, _ = _grid_step_towards(positions, plane.normal)
        # the matter just above the plane, where the object meets its support: a ball's footprint is the small
        # disc it stands on, not its equator's
        base = mask & opaque & (height > 1.0) & (height < FOOTPRINT_VOXELS)
        above_base = base.any(axis=axis, keepdims=True)
        footprint = np.broadcast_to(ndimage.binary_dilation(above_base, iterations=1), mask.shape)
        above = np.where(footprint, height + BASE_VOXELS, above)
    return above


def cap_opacity(above: np.ndarray, level: float) -> np.ndarray:
    """The most opacity each vertex may keep so that the level crossing lies where the cut runs (above = 0), between
    vertex layers: linear in the height, 0 a voxel below the cut, `level` on it. Cutting whole vertices put the base
    at the middle between the last kept layer and the first cut one, up to half a voxel from the cut: demo bases
    5.5 mm below the floor to 1 mm above it (7-mm voxels)."""
    return np.clip(level * (1.0 + above), 0.0, 1.0).astype(np.float32)
