"""A small z-buffer triangle rasterizer in numpy: which face covers each pixel centre, and where inside it.

Used to bake textures (triangles laid out in UV space) and to render meshes from dataset cameras for the appearance
scores. Faces are drawn in groups of one window size, each group one array operation over its faces' windows.
"""

from __future__ import annotations

import numpy as np

EDGE_EPSILON = -1e-7  # pixel centres on a shared edge belong to both faces: no cracks between them
CHUNK_PIXELS = 1 << 20  # candidate pixel centres per array operation: a few 10 MB of temporaries


def rasterize(points: np.ndarray, faces: np.ndarray, size: tuple[int, int],
              depth: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Face index int32 [H,W] (-1 where no face) and barycentric weights float32 [H,W,3] of every pixel centre.

    points: [V,2] vertex positions in pixels (x right, y down; pixel (col, row) has its centre at (col+.5, row+.5)).
    faces: [F,3] vertex indices. size: (width, height).
    depth: [V] positive distances along the view axis: the nearest face wins (the first of equally near ones) and the
    weights are perspective-correct; None for flat layouts (UV charts do not overlap; where they do, the last face wins).
    """
    width, height = int(size[0]), int(size[1])
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    corners = np.asarray(points, dtype=np.float64)[faces]  # [F,3,2]
    lo = np.clip(np.floor(corners.min(axis=1) - 0.5).astype(np.int64), 0, [width, height])
    hi = np.clip(np.ceil(corners.max(axis=1) - 0.5).astype(np.int64) + 1, 0, [width, height])
    doubled_area = _cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    drawable = np.flatnonzero((hi > lo).all(axis=1) & (np.abs(doubled_area) > 1e-12))
    # faces grouped by the power-of-two square their bounding box fits in, so each group is one array operation
    # over a fixed window per face; large groups go in chunks of about CHUNK_PIXELS candidate pixels
    extent = (hi - lo)[drawable].max(axis=1) if len(drawable) else np.zeros(0, dtype=np.int64)
    window = 1 << np.ceil(np.log2(np.maximum(extent, 1))).astype(np.int64)
    fragments = []
    for side in np.unique(window):
        group = drawable[window == side]
        step = max(1, CHUNK_PIXELS // int(side) ** 2)
        for k in range(0, len(group), step):
            fragments.append(_fragments(group[k:k + step], int(side), corners, lo, hi, doubled_area, faces, depth))
    face_id = np.full((height, width), -1, dtype=np.int32)
    bary = np.zeros((height, width, 3), dtype=np.float32)
    if not fragments:
        return face_id, bary
    face, pixel, weights, z = (np.concatenate(parts) for parts in zip(*fragments))
    pixel_index = pixel[:, 1] * width + pixel[:, 0]
    # one fragment per pixel: the nearest, then the lowest face index (depth); the highest face index (flat)
    order = np.lexsort((face, z, pixel_index)) if depth is not None else np.lexsort((-face, pixel_index))
    first = order[np.r_[True, pixel_index[order][1:] != pixel_index[order][:-1]]]
    face_id.reshape(-1)[pixel_index[first]] = face[first]
    bary.reshape(-1, 3)[pixel_index[first]] = weights[first]
    return face_id, bary


def _fragments(group: np.ndarray, side: int, corners: np.ndarray, lo: np.ndarray, hi: np.ndarray,
               doubled_area: np.ndarray, faces: np.ndarray, depth: np.ndarray | None):
    """The pixel centres inside each face of `group` (whose boxes fit a side x side window): their face, (col, row),
    barycentric weights (perspective-correct with `depth`) and depth (0 without)."""
    offsets = np.stack(np.meshgrid(np.arange(side), np.arange(side), indexing="xy"), -1).reshape(-1, 2)
    pixel = lo[group][:, None, :] + offsets[None]  # [G,S,2] (col, row)
    in_box = (pixel < hi[group][:, None, :]).all(-1)
    centre = pixel + 0.5
    a, b, c = (corners[group, j][:, None, :] for j in range(3))
    weights = np.stack([_cross(c - b, centre - b), _cross(a - c, centre - c), _cross(b - a, centre - a)], -1)
    weights /= doubled_area[group][:, None, None]
    inside = in_box & (weights >= EDGE_EPSILON).all(-1)
    g, s = np.nonzero(inside)
    face, weights = group[g], weights[g, s]
    if depth is None:
        return face, pixel[g, s], weights.astype(np.float32), np.zeros(len(g))
    inverse = weights / np.asarray(depth, dtype=np.float64)[faces[face]]  # 1/z is linear on the screen
    z = 1.0 / inverse.sum(-1)
    return face, pixel[g, s], (inverse * z[:, None]).astype(np.float32), z


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def interpolate(values: np.ndarray, faces: np.ndarray, face_id: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """Per-vertex `values` [V,C] at every covered pixel: [N,C] for the pixels where face_id >= 0 (row-major order)."""
    covered = face_id >= 0
    corner_values = np.asarray(values)[np.asarray(faces)[face_id[covered]]]  # [N,3,C]
    return np.einsum("nk,nkc->nc", bary[covered], corner_values)


def render_colours(vertices: np.ndarray, faces: np.ndarray, cameras, i: int, vertex_rgb: np.ndarray | None = None,
                   uv: np.ndarray | None = None, texture: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The mesh seen from camera i: float32 sRGB [H,W,3] and the covered pixels bool [H,W]. Colours come from
    `vertex_rgb` [V,3] in [0,1], or from `texture` (uint8 [S,S,3], top row first) at the vertices' `uv` [V,2]."""
    xy, depth = cameras.project(i, vertices)
    in_front = (depth[np.asarray(faces)] > 1e-6).all(axis=1)  # no clipping: a face reaching behind the camera is dropped
    width, height = int(cameras.width[i]), int(cameras.height[i])
    face_id, bary = rasterize(xy, np.asarray(faces)[in_front], (width, height), depth=np.maximum(depth, 1e-6))
    covered = face_id >= 0
    image = np.zeros((height, width, 3), dtype=np.float32)
    kept = np.asarray(faces)[in_front]
    if texture is not None:
        at = interpolate(uv, kept, face_id, bary)
        size = np.array([texture.shape[1], texture.shape[0]])
        texel = np.clip((np.stack([at[:, 0], 1.0 - at[:, 1]], 1) * size).astype(np.int64), 0, size - 1)
        image[covered] = texture[texel[:, 1], texel[:, 0]] / 255.0
    else:
        image[covered] = interpolate(vertex_rgb, kept, face_id, bary)
    return image, covered
