"""Flat, uniformly coloured faces: the photos leave the field free to dent them, the silhouettes do not.

A face of one colour looks the same to every view whether it is flat or hollowed, so nothing in the photos holds the
field's surface there: on a demo field the middle of the red box's sides lay 3 cm inside the box (the views' rendered
depth too), while its edges, which the silhouettes pin, were right. The visual hull is the largest shape the
object's silhouettes allow. Where the field's surface lies inside it, within the convex hull of the object's matter,
and every view that would see the filled point sees the same colour there, nothing tells the dent from a flat face,
and the flat face is what objects have: the hull is the surface.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from .interior import framing
from .texture import Photo

# A point is filled when the views that would see it agree on its colour to this standard deviation (sRGB in [0,1],
# the mean over the channels). Demo and lookalike fields, hull points some view sees: the red box's median 0.006 (99th
# percentile 0.038; 0.2 % refused), the grey cubes' 0.004 (none refused); the shaded duck and the black-and-white
# ball refuse 39 % and 40 %, the bunnies 16-55 %: from there the views see different parts of a surface
COLOUR_STD = 0.05


def silhouette_fill(solid: np.ndarray, positions: np.ndarray, photos: Sequence[Photo],
                    silhouettes: Sequence[np.ndarray | None], tolerance: float,
                    others: np.ndarray | None = None) -> np.ndarray:
    """bool [X,Y,Z]: vertices outside `solid` (the object's matter, bool [X,Y,Z]) inside its convex hull that some
    view sees, no view's silhouette excludes, and on whose colour the views agree (COLOUR_STD), connected to the
    solid; never what `others` holds.

    positions: world [X,Y,Z,3]; silhouettes: the object's mask (bool) in each photo, at the size of its
    depth_cameras (None: the photo has none and is left out); tolerance: world distance by which a view's first
    surface must lie in front of a point to hide it (what something else hides is not excluded by that outline)."""
    if len(photos) != len(silhouettes):
        raise ValueError(f"{len(silhouettes)} silhouettes for {len(photos)} photos")
    candidates = _in_convex_hull(solid) & ~solid
    if others is not None:
        candidates &= ~others
    result = np.zeros_like(solid)
    if not candidates.any() or not photos:
        return result
    index = np.nonzero(candidates)
    points = positions[index]
    excluded = np.zeros(len(points), dtype=bool)
    # running sums for each point's colour spread over the views that see it: memory per point, not per view
    count = np.zeros(len(points))
    total, squares = np.zeros((len(points), 3)), np.zeros((len(points), 3))
    for photo, silhouette in zip(photos, silhouettes):
        if silhouette is None:
            continue
        visible, inside = _seen(points, photo, silhouette, tolerance)
        excluded |= visible & ~inside
        colours = _colours(points, photo)
        visible &= ~np.isnan(colours[:, 0])
        count += visible
        total[visible] += colours[visible]
        squares[visible] += colours[visible] ** 2
    # only what some view sees: what none does (under the floor, inside the object) is interior.py's to fill
    seen = count > 0
    mean = total[seen] / count[seen, None]
    spread = np.full(len(points), np.inf)
    spread[seen] = np.sqrt(np.clip(squares[seen] / count[seen, None] - mean ** 2, 0.0, None)).mean(axis=1)
    result[tuple(a[~excluded & (spread <= COLOUR_STD)] for a in index)] = True
    return _touching(result, solid)


def _touching(filled: np.ndarray, solid: np.ndarray) -> np.ndarray:
    """The filled vertices connected to the solid through filled ones (face neighbours): a pocket of hull apart from
    the matter would be a mesh part of its own (the thin preset's chair and a lookalike bunny got one)."""
    labels, _ = ndimage.label(filled | solid, structure=ndimage.generate_binary_structure(3, 1))
    return filled & np.isin(labels, np.unique(labels[solid]))


def _in_convex_hull(solid: np.ndarray) -> np.ndarray:
    """bool [X,Y,Z]: grid vertices inside the convex hull of the solid's vertices."""
    result = np.zeros_like(solid)
    points = np.argwhere(solid)
    if len(points) < 4:
        return result
    try:
        hull = ConvexHull(points)
    except QhullError:  # flat: no inside
        return result
    lo, hi = points.min(axis=0), points.max(axis=0) + 1
    box = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), axis=-1).reshape(-1, 3)
    normals, offsets = hull.equations[:, :3], hull.equations[:, 3]
    # in blocks: a large object's box times a hull of thousands of facets would not fit in memory at once
    block = max(1, 2 ** 24 // len(offsets))
    inside = np.concatenate([np.all(box[k:k + block] @ normals.T + offsets <= 1e-6, axis=1)
                             for k in range(0, len(box), block)])
    result[tuple(box[inside].T)] = True
    return result


def _seen(points: np.ndarray, photo: Photo, silhouette: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Per point: whether the photo would see it (framed, not behind its first surface by more than `tolerance`),
    and whether it falls inside the silhouette."""
    k, rows, cols, distance = framing(points, photo.depth_cameras, photo.index, photo.first_surface.shape)
    visible = np.zeros(len(points), dtype=bool)
    inside = np.zeros(len(points), dtype=bool)
    visible[k] = distance < photo.first_surface[rows, cols] + tolerance
    inside[k] = silhouette[rows, cols]
    return visible, inside


def _colours(points: np.ndarray, photo: Photo) -> np.ndarray:
    """[P,3] the photo's colour where each point projects (nan outside the image)."""
    k, rows, cols, _ = framing(points, photo.cameras, photo.index, photo.image.shape[:2])
    colours = np.full((len(points), 3), np.nan)
    colours[k] = photo.image[rows, cols]
    return colours

