"""The inside of an object is what no photo sees: every view's rays stop at its surface first.

A field leaves an object's inside unconstrained: total variation spreads the walls' density into it, and it ends up a
fog around the surface level that marching cubes turns into sponge-like inner walls (on a demo field 15 % of the box
mesh's area lay more than 2 cm inside the box). Filling what (almost) no view sees in front of its first rendered
surface makes the object solid, whatever holes its shell has, which the closed-pocket fill cannot.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import trimesh

from ..data.cameras import Cameras
from .texture import Photo


# A point is inside when at most this fraction of the views that frame it see it in front of their surface: a few
# views' depths are wrong near silhouettes. Demo field: points 1.5 cm inside the objects are seen by 0-2 of 48 views,
# points 1 cm outside by 15-48 (at least 30 % of the views framing them)
SEEN_FRACTION = 0.1


def unseen(points: np.ndarray, photos: Iterable[Photo], tolerance: float) -> np.ndarray:
    """bool [P]: world points [P,3] that (almost) no photo sees in front of its rendered surface (by more than
    `tolerance`): at most SEEN_FRACTION of the photos framing a point. Where a photo's render is empty its surface
    is infinitely far."""
    framed, in_front = _view_counts(points, photos, -tolerance)
    return (framed > 0) & (in_front <= SEEN_FRACTION * framed)


def visible_views(points: np.ndarray, photos: Iterable[Photo], tolerance: float) -> np.ndarray:
    """int [P]: how many photos see each world point, i.e. frame it no farther than `tolerance` behind their first
    surface."""
    return _view_counts(points, photos, tolerance)[1]


def _view_counts(points: np.ndarray, photos: Iterable[Photo], offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Per point: the photos framing it, and those in which its distance is below their first surface + offset."""
    points = np.asarray(points, dtype=np.float64)
    framed = np.zeros(len(points), dtype=np.int64)
    counted = np.zeros(len(points), dtype=np.int64)
    for photo in photos:
        inside, rows, cols, distance = framing(points, photo.depth_cameras, photo.index, photo.first_surface.shape)
        framed[inside] += 1
        counted[inside] += distance < photo.first_surface[rows, cols] + offset
    return framed, counted


def framing(points: np.ndarray, cameras: Cameras, i: int,
            size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Where world points [P,3] fall in camera i's image of `size` (height, width): the indices of those it frames,
    their pixel rows and columns, and their distance from the camera."""
    xy, axis_depth = cameras.project(i, points)
    h, w = size
    inside = np.flatnonzero((axis_depth > 0) & (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h))
    distance = np.linalg.norm(points[inside] - cameras.c2w[i, :3, 3], axis=1)
    return inside, xy[inside, 1].astype(np.int64), xy[inside, 0].astype(np.int64), distance


def enclosed(mask: np.ndarray) -> np.ndarray:
    """bool [X,Y,Z]: vertices outside `mask` from which walks along at least five of the six grid directions meet it:
    the inside of a shell, even one that a contact with the floor or a neighbour has opened (binary_fill_holes leaks
    out through such an opening, and so does the walk that passes through it). A bowl's inside counts as enclosed
    too: with_unseen_inside keeps it out because the views see into it."""
    hits = np.zeros(mask.shape, dtype=np.int8)
    for axis in range(3):
        hits += np.logical_or.accumulate(mask, axis=axis)
        hits += np.flip(np.logical_or.accumulate(np.flip(mask, axis), axis=axis), axis)
    return (hits >= 5) & ~mask


def with_unseen_inside(mask: np.ndarray, positions: np.ndarray, photos: Iterable[Photo], tolerance: float,
                       others: np.ndarray | None = None) -> np.ndarray:
    """`mask` with the enclosed vertices (enclosed()) that no photo sees added: SA3D's votes reach only what the views
    see, so a large object's inside has none (demo ball: V = 0 within 6 cm of its centre, and that hole opens into
    the floor through the contact, so its mesh carried a 700-cm^2 inner shell). positions: world [X,Y,Z,3]; others:
    bool [X,Y,Z], what other objects hold, never added (the ball lying in the tray is unseen and enclosed too)."""
    inside = enclosed(mask)
    if others is not None:
        inside &= ~others
    return mask | _unseen_among(inside, positions, photos, tolerance)


# A vertex of the mask is one no view sees well when the view that sees it best sees less of it than this fraction
# of the median over the object's matter: rays past the object's edge reach faintly into what lies behind it and
# vote it in. Fox (real capture, session-5 field): the wall behind the mount came with the mesh,
# 0.25 left a sliver, 0.5 none. F @ 1 % of the objects' diagonals, same fields and masks, ratio 0 / 0.25 / 0.5 / 0.75:
# room 0.567 / 0.580 / 0.600 / 0.625 (duck 0.872 -> 0.947, box 0.632 -> 0.712 at 0.5), demo 0.874 / 0.873 / 0.870 /
# 0.869 (ball 0.830 -> 0.811 at 0.5). A mask holding much dim matter under its surface lowers the median: the rule
# then drops less, never more
MIN_SEEN_RATIO = 0.5


def well_seen(mask: np.ndarray, matter: np.ndarray, visibility: np.ndarray) -> np.ndarray:
    """bool [X,Y,Z]: `mask` without the vertices that no view sees well (MIN_SEEN_RATIO of the median `visibility`
    of the mask's `matter`). visibility: float [X,Y,Z], how much of each vertex the view that sees it best sees
    (MaskGrid.visibility). What goes and lies enclosed by the rest, the object's inside, with_unseen_inside puts back."""
    inside = mask & matter
    if not inside.any():
        return mask
    return mask & (visibility >= MIN_SEEN_RATIO * float(np.median(visibility[inside])))


def fill_unseen(opacity: np.ndarray, mask: np.ndarray, positions: np.ndarray, photos: Iterable[Photo],
                tolerance: float, level: float) -> np.ndarray:
    """`opacity` [X,Y,Z] made opaque (1) at the mask's vertices below `level` that no photo sees; positions: their
    world positions [X,Y,Z,3]."""
    filled = _unseen_among(mask & (opacity <= level), positions, photos, tolerance)
    return np.where(filled, 1.0, opacity).astype(opacity.dtype) if filled.any() else opacity


def _unseen_among(candidates: np.ndarray, positions: np.ndarray, photos: Iterable[Photo],
                  tolerance: float) -> np.ndarray:
    """bool [X,Y,Z]: the `candidates` vertices that no photo sees (unseen())."""
    result = np.zeros_like(candidates)
    if candidates.any():
        index = np.nonzero(candidates)
        result[tuple(a[unseen(positions[index], photos, tolerance)] for a in index)] = True
    return result


def drop_unseen_parts(mesh: trimesh.Trimesh, photos: Iterable[Photo], tolerance: float) -> trimesh.Trimesh:
    """The mesh without connected parts that no photo sees (most of their vertices behind every view's first
    surface): voids and shells inside the object. The largest part always stays."""
    parts = mesh.split(only_watertight=False)
    if len(parts) <= 1:
        return mesh
    photos = list(photos)
    largest = int(np.argmax([part.area for part in parts]))
    kept = [part for k, part in enumerate(parts)
            if k == largest or np.median(visible_views(part.vertices, photos, tolerance)) >= 1]
    return mesh if len(kept) == len(parts) else trimesh.util.concatenate(kept)
