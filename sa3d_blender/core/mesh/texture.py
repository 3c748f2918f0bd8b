"""A photo texture for an object mesh: xatlas unwraps it, and every texel takes its colour from the training photos that
see it, blended by how squarely and how closely each one looks at the surface.

Visibility comes from the field's rendered depth per view (the frozen SA3D weights keep it), so another object in
front of the texel, or the object's own far side, does not paint it. Texels no photo sees (the underside on the floor)
keep the field's colour, interpolated from the vertex colours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import trimesh
from scipy import ndimage

from ..data.cameras import Cameras
from .rasterize import interpolate, rasterize


@dataclass(frozen=True)
class TextureSettings:
    size: int = 1024  # texels a side
    padding: int = 4  # texels each chart grows by, so filtered lookups at chart borders still see the chart's colour
    # weight of a photo = cos(angle to the surface normal)^sharpness x (focal / distance)^2: the most frontal, closest
    # photos dominate, so a few misregistered ones do not blur the texture
    sharpness: float = 4.0
    min_cos: float = 0.15  # photos seeing the surface at more than ~81 degrees do not count
    # a texel is visible in a photo when it is no farther than the rendered depth there plus this fraction of the
    # distance (and the absolute `depth_margin`, a fraction of the mesh's diagonal)
    depth_tolerance: float = 0.02
    depth_margin: float = 0.02


@dataclass
class Photo:
    """One training photo: colours from `image` (size of `cameras[index]`), visibility from `depth`, the field's
    rendered ray distance at the size of `depth_cameras[index]`, and `surface`, its first surface there (interior.py;
    None: the depth)."""

    index: int
    image: np.ndarray  # float32 [H,W,3] sRGB in [0,1]
    cameras: Cameras
    depth: np.ndarray  # float32 [h,w] expected ray distance
    depth_cameras: Cameras
    # float32 [h,w] where half the light has stopped (inf: never): what the inside fill needs. Texels keep the
    # expected depth their tolerances were chosen with (the two give the same demo textures to 0.1 dB)
    surface: np.ndarray | None = None

    @property
    def first_surface(self) -> np.ndarray:
        return self.depth if self.surface is None else self.surface


@dataclass
class TexturedMesh:
    vertices: np.ndarray  # float64 [V',3] (a vertex is split where charts meet)
    faces: np.ndarray  # int64 [F,3], the mesh's faces in the same order and corner order
    mapping: np.ndarray  # int64 [V']: the mesh's vertex each of these copies
    uv: np.ndarray  # float32 [V',2] in [0,1], v up (glTF, OBJ and Blender's convention)
    image: np.ndarray  # uint8 [S,S,3] sRGB, top row first
    seen_fraction: float  # share of the surface's texels at least one photo saw

    @property
    def loop_uv(self) -> np.ndarray:
        """uv per face corner [F*3,2]: what a mesh with welded vertices (Blender's) needs."""
        return self.uv[self.faces].reshape(-1, 2)

    def trimesh(self) -> trimesh.Trimesh:
        from PIL import Image

        visual = trimesh.visual.TextureVisuals(uv=self.uv, image=Image.fromarray(self.image))
        return trimesh.Trimesh(self.vertices, self.faces, visual=visual, process=False)


def unwrap(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """xatlas charts: for each new vertex its original index [V'], faces over the new vertices [F,3], uv [V',2]."""
    import xatlas

    mapping, faces, uv = xatlas.parametrize(np.asarray(mesh.vertices, dtype=np.float32),
                                             np.asarray(mesh.faces, dtype=np.uint32))
    return mapping.astype(np.int64), faces.astype(np.int64), uv.astype(np.float32)


def bake_texture(mesh: trimesh.Trimesh, photos: Iterable[Photo],
                 settings: TextureSettings = TextureSettings()) -> TexturedMesh:
    """Unwrap `mesh` (with vertex colours as the fallback) and paint its texture from `photos`."""
    mapping, faces, uv = unwrap(mesh)
    size = settings.size
    face_id, bary = rasterize(np.stack([uv[:, 0], 1.0 - uv[:, 1]], 1) * size, faces, (size, size))
    covered = face_id >= 0
    vertices = np.asarray(mesh.vertices, dtype=np.float64)[mapping]
    points = interpolate(vertices, faces, face_id, bary)
    normals = interpolate(np.asarray(mesh.vertex_normals, dtype=np.float64)[mapping], faces, face_id, bary)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    fallback = interpolate(_vertex_rgb(mesh)[mapping], faces, face_id, bary)

    margin = settings.depth_margin * float(np.linalg.norm(mesh.bounds[1] - mesh.bounds[0]))
    total = np.zeros((len(points), 3))
    weight = np.zeros(len(points))
    for photo in photos:
        sample, w = _photo_colours(photo, points, normals, settings, margin)
        total += sample * w[:, None]
        weight += w
    seen = weight > 0
    colours = np.where(seen[:, None], total / np.maximum(weight, 1e-12)[:, None], fallback)

    texture = np.zeros((size, size, 3))
    texture[covered] = colours
    texture = _grow_charts(texture, covered, settings.padding)
    image = np.round(np.clip(texture, 0.0, 1.0) * 255).astype(np.uint8)
    return TexturedMesh(vertices, faces, mapping, uv, image, float(seen.mean()) if len(seen) else 0.0)


def _photo_colours(photo: Photo, points: np.ndarray, normals: np.ndarray, settings: TextureSettings,
                   margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Colours [P,3] of `points` in one photo and their blend weights [P] (0 where the photo does not see them)."""
    i, cameras = photo.index, photo.cameras
    centre = cameras.c2w[i, :3, 3]
    to_camera = centre - points
    distance = np.linalg.norm(to_camera, axis=1)
    cos = np.einsum("pk,pk->p", normals, to_camera) / np.maximum(distance, 1e-12)
    weight = np.zeros(len(points))
    colours = np.zeros((len(points), 3))
    facing = np.nonzero(cos > settings.min_cos)[0]
    if not len(facing):
        return colours, weight
    xy, axis_depth = cameras.project(i, points[facing])
    height, width = photo.image.shape[:2]
    inside = (axis_depth > 0) & (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
    facing, xy = facing[inside], xy[inside]
    depth_xy, _ = photo.depth_cameras.project(i, points[facing])
    h, w = photo.depth.shape
    col = np.clip(depth_xy[:, 0].astype(np.int64), 0, w - 1)
    row = np.clip(depth_xy[:, 1].astype(np.int64), 0, h - 1)
    surface = photo.depth[row, col]
    near = distance[facing]
    visible = near <= surface * (1 + settings.depth_tolerance) + margin
    facing, xy = facing[visible], xy[visible]
    colours[facing] = _bilinear(photo.image, xy)
    focal = 0.5 * (cameras.fx[i] + cameras.fy[i])
    weight[facing] = cos[facing] ** settings.sharpness * (focal / distance[facing]) ** 2
    return colours, weight


def _bilinear(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """image [H,W,C] at pixel positions xy [P,2] (pixel centres at +0.5), clamped at the borders."""
    height, width = image.shape[:2]
    x = np.clip(xy[:, 0] - 0.5, 0, width - 1)
    y = np.clip(xy[:, 1] - 0.5, 0, height - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def _vertex_rgb(mesh: trimesh.Trimesh) -> np.ndarray:
    colors = getattr(mesh.visual, "vertex_colors", None)
    if colors is None or len(colors) != len(mesh.vertices):
        return np.full((len(mesh.vertices), 3), 0.5)
    return np.asarray(colors, dtype=np.float64)[:, :3] / 255.0


def _grow_charts(texture: np.ndarray, covered: np.ndarray, padding: int) -> np.ndarray:
    """Copy each chart's border texels `padding` texels outwards (nearest covered texel)."""
    if padding <= 0 or not covered.any():
        return texture
    distance, (rows, cols) = ndimage.distance_transform_edt(~covered, return_indices=True)
    grown = texture[rows, cols]
    keep = covered | (distance <= padding)
    return np.where(keep[..., None], grown, 0.0)
