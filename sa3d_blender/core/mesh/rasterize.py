"""A small z-buffer triangle rasterizer in numpy: which face covers each pixel centre, and where inside it.

Used to bake textures (triangles laid out in UV space) and to render meshes from dataset cameras for the appearance
scores. One Python step per face over its bounding box: meshes of a few 10k faces at up to ~1 MP take seconds.
"""

from __future__ import annotations

import numpy as np

EDGE_EPSILON = -1e-7  # pixel centres on a shared edge belong to both faces: no cracks between them


def rasterize(points: np.ndarray, faces: np.ndarray, size: tuple[int, int],
              depth: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Face index int32 [H,W] (-1 where no face) and barycentric weights float32 [H,W,3] of every pixel centre.

    points: [V,2] vertex positions in pixels (x right, y down; pixel (col, row) has its centre at (col+.5, row+.5)).
    faces: [F,3] vertex indices. size: (width, height).
    depth: [V] positive distances along the view axis: the nearest face wins and the weights are perspective-correct;
    None for flat layouts (UV charts do not overlap).
    """
    width, height = int(size[0]), int(size[1])
    face_id = np.full((height, width), -1, dtype=np.int32)
    bary = np.zeros((height, width, 3), dtype=np.float32)
    zbuffer = np.full((height, width), np.inf) if depth is not None else None
    corners = np.asarray(points, dtype=np.float64)[np.asarray(faces)]  # [F,3,2]
    lo = np.clip(np.floor(corners.min(axis=1) - 0.5).astype(np.int64), 0, [width, height])
    hi = np.clip(np.ceil(corners.max(axis=1) - 0.5).astype(np.int64) + 1, 0, [width, height])
    doubled_area = _cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    drawable = (hi > lo).all(axis=1) & (np.abs(doubled_area) > 1e-12)
    for f in np.nonzero(drawable)[0]:
        (x0, y0), (x1, y1) = lo[f], hi[f]
        xs, ys = np.meshgrid(np.arange(x0, x1) + 0.5, np.arange(y0, y1) + 0.5)
        a, b, c = corners[f]
        w0 = _cross(c - b, np.stack([xs - b[0], ys - b[1]], -1))
        w1 = _cross(a - c, np.stack([xs - c[0], ys - c[1]], -1))
        w2 = _cross(b - a, np.stack([xs - a[0], ys - a[1]], -1))
        weights = np.stack([w0, w1, w2], -1) / doubled_area[f]
        inside = (weights >= EDGE_EPSILON).all(-1)
        if not inside.any():
            continue
        rows, cols = np.nonzero(inside)
        rows, cols, weights = rows + y0, cols + x0, weights[inside]
        if depth is not None:
            inverse = weights / np.asarray(depth, dtype=np.float64)[faces[f]]  # 1/z is linear on the screen
            z = 1.0 / inverse.sum(-1)
            nearer = z < zbuffer[rows, cols]
            rows, cols, weights, z = rows[nearer], cols[nearer], inverse[nearer] * z[nearer, None], z[nearer]
            zbuffer[rows, cols] = z
        face_id[rows, cols] = f
        bary[rows, cols] = weights
    return face_id, bary


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
