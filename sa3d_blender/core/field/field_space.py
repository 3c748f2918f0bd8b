"""Where a field's grid lives: the map from world points to *field space*, whose box the voxel grid spans.

- bounded (no warp): field space is the world; nothing outside the box exists.
- `Contraction` (360-degree captures): an inner cube at full, uniform resolution and a shell holding the rest of the
  world out to infinity (DVGO v2 / mip-NeRF 360).
- `NDCSpace` (forward-facing captures): NeRF's normalised device coordinates of a reference camera: the frustum from
  the near plane to infinity becomes a box, resolution follows the image plane and inverse depth, and rays stay straight
  lines, so they are marched with uniform steps like a bounded box (what the reference SA3D uses for LLFF).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Contraction:
    """Infinity-norm contraction: with q = (p - centre) / half, q stays where |q|_inf <= 1 and becomes
    q / |q| * (1 + shell - shell / |q|) outside, |q| = |q|_inf.

    The cube keeps 1 / (1 + shell) of the grid's width at full, uniform resolution; the shell holds the rest of the
    world with resolution falling off as 1 / distance^2, which is what a camera inside it can resolve anyway.
    """

    centre: tuple[float, float, float]
    half: float  # half the inner cube's side, world units
    shell: float = 0.2  # DVGO v2's bg_len

    kind = "contraction"

    def field_bbox(self) -> np.ndarray:
        extent = 1.0 + self.shell
        return np.array([[-extent] * 3, [extent] * 3])

    def inner_bbox(self) -> np.ndarray:
        return np.array([[-1.0] * 3, [1.0] * 3])

    def inner(self, q: torch.Tensor) -> torch.Tensor:
        """bool: field-space points of the inner cube, where objects are segmented and meshed."""
        return q.abs().amax(-1) <= 1.0 + 1e-6

    def to_field(self, points: torch.Tensor) -> torch.Tensor:
        q = (points - torch.as_tensor(self.centre, dtype=points.dtype, device=points.device)) / self.half
        norm = q.abs().amax(-1, keepdim=True)
        outside = norm > 1
        safe = torch.where(outside, norm, torch.ones_like(norm))
        return torch.where(outside, q / safe * (1 + self.shell - self.shell / safe), q)

    def to_world(self, q: torch.Tensor) -> torch.Tensor:
        """Inverse of to_field for points of the inner cube and the shell (|q|_inf < 1 + shell)."""
        norm = q.abs().amax(-1, keepdim=True)
        outside = norm > 1
        # |q'| = 1 + shell - shell / r  =>  r = shell / (1 + shell - |q'|)
        r = self.shell / (1 + self.shell - norm).clamp_min(1e-6)
        scaled = torch.where(outside, q / norm.clamp_min(1e-12) * r, q)
        return scaled * self.half + torch.as_tensor(self.centre, dtype=q.dtype, device=q.device)

    def to_dict(self) -> dict:
        return _plain({"kind": self.kind, **asdict(self)})


@dataclass(frozen=True)
class NDCSpace:
    """NDC of a reference camera (OpenGL axes, c2w `pose`): for a point at camera-frame (x, y, z), z < 0,
    x' = -sx x / z, y' = -sy y / z, z' = 1 + 2 near / z, so z' = -1 on the near plane and 1 at infinity.
    sx, sy are the reference camera's 2 f / W and 2 f / H; the box's x', y' range covers every camera's frustum.
    Field space scales z' by `depth_scale`, so that a grid of cubic field-space voxels has more of them across the
    image than along the depth, as forward-facing views need."""

    pose: tuple  # 4x4 camera-to-world of the reference camera, as nested tuples
    near: float
    sx: float
    sy: float
    xy_extent: tuple[float, float]  # the box is [-ex, ex] x [-ey, ey] x [-depth_scale, depth_scale]
    depth_scale: float = 1.0

    kind = "ndc"

    def field_bbox(self) -> np.ndarray:
        ex, ey = self.xy_extent
        return np.array([[-ex, -ey, -self.depth_scale], [ex, ey, self.depth_scale]])

    def inner_bbox(self) -> np.ndarray:
        return self.field_bbox()

    def inner(self, q: torch.Tensor) -> torch.Tensor:
        return torch.ones(q.shape[:-1], dtype=torch.bool, device=q.device)

    def _frame(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pose = torch.as_tensor(self.pose, dtype=like.dtype, device=like.device)
        return pose[:3, :3], pose[:3, 3]

    def to_field(self, points: torch.Tensor) -> torch.Tensor:
        rotation, centre = self._frame(points)
        local = (points - centre) @ rotation
        # points at or behind the near plane's camera have no NDC: clamp their depth to just in front of it
        z = local[..., 2].clamp(max=-1e-6)
        return torch.stack([-self.sx * local[..., 0] / z, -self.sy * local[..., 1] / z,
                            self.depth_scale * (1 + 2 * self.near / z)], -1)

    def camera_depth(self, q_z):
        """Depth in front of the reference camera (-z of its frame) of field-space z (tensor or array)."""
        return 2 * self.near / (1 - q_z / self.depth_scale).clip(min=1e-6)

    def to_world(self, q: torch.Tensor) -> torch.Tensor:
        rotation, centre = self._frame(q)
        z = -self.camera_depth(q[..., 2])
        local = torch.stack([-q[..., 0] * z / self.sx, -q[..., 1] * z / self.sy, z], -1)
        return local @ rotation.T + centre

    def rays_to_field(self, origins: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Field-space ray origins (on the near plane) and directions, with field point = o' + s d', s in [0, 1)
        from the near plane to infinity (NeRF's ndc_rays)."""
        rotation, centre = self._frame(origins)
        o, d = (origins - centre) @ rotation, dirs @ rotation
        dz = torch.where(d[:, 2].abs() < 1e-9, torch.full_like(d[:, 2], -1e-9), d[:, 2])
        o = o + d * (-(self.near + o[:, 2]) / dz)[:, None]
        oz = o[:, 2]
        o_ndc = torch.stack([-self.sx * o[:, 0] / oz, -self.sy * o[:, 1] / oz,
                             self.depth_scale * (1 + 2 * self.near / oz)], -1)
        d_ndc = torch.stack([-self.sx * (d[:, 0] / dz - o[:, 0] / oz), -self.sy * (d[:, 1] / dz - o[:, 1] / oz),
                             -self.depth_scale * 2 * self.near / oz], -1)
        return o_ndc, d_ndc

    def to_dict(self) -> dict:
        return _plain({"kind": self.kind, **asdict(self)})


FieldSpace = Contraction | NDCSpace


def _plain(value):
    """Python floats, lists and dicts only (numpy scalars would make a weights-only checkpoint load fail)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, str) else float(value)


def space_from_dict(data: dict | None) -> FieldSpace | None:
    if not data:
        return None
    data = dict(data)
    kind = data.pop("kind")
    if kind == Contraction.kind:
        return Contraction(centre=tuple(data["centre"]), half=data["half"], shell=data["shell"])
    if kind == NDCSpace.kind:
        return NDCSpace(pose=tuple(tuple(r) for r in data["pose"]), near=data["near"], sx=data["sx"], sy=data["sy"],
                        xy_extent=tuple(data["xy_extent"]), depth_scale=data.get("depth_scale", 1.0))
    raise ValueError(f"unknown field space kind {kind!r}")


def contraction_around(bbox: np.ndarray) -> Contraction:
    """The contraction whose inner cube holds `bbox` [2,3] (a cube around its centre)."""
    lo, hi = np.asarray(bbox, dtype=np.float64)
    return Contraction(centre=tuple(float(v) for v in (lo + hi) / 2), half=float((hi - lo).max() / 2))


def ndc_for_cameras(cameras, near: float, typical_depth: float, margin: float = 1.05,
                    depth_scale: float = 1.0) -> NDCSpace:
    """NDC of the average camera (mean centre, mean orientation) whose box holds what every camera sees at the
    scene's `typical_depth` and beyond, out to infinity.

    Nearer than that, the edges of the outermost views fall outside the box: covering them too (at the near bound)
    made the box 1.6x wider on flower and its image-plane resolution that much coarser, for a few border pixels."""
    axes = cameras.c2w[:, :3, :3].mean(axis=0)
    u, _, vt = np.linalg.svd(axes)  # nearest rotation to the mean of the rotations
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:
        rotation = -rotation
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = rotation, cameras.c2w[:, :3, 3].mean(axis=0)
    k = int(np.argmin(np.abs(cameras.fx - np.median(cameras.fx))))
    sx, sy = 2 * cameras.fx[k] / cameras.width[k], 2 * cameras.fy[k] / cameras.height[k]
    probe = NDCSpace(tuple(map(tuple, pose)), float(near), float(sx), float(sy), (1.0, 1.0))
    # every camera's image corners, at near-plane depth and far away, in this NDC
    points = []
    for i in range(len(cameras)):
        w, h = float(cameras.width[i]), float(cameras.height[i])
        corners_x = np.array([0.0, w, 0.0, w])
        corners_y = np.array([0.0, 0.0, h, h])
        origins, dirs = cameras.rays(np.full(4, i), corners_x, corners_y)
        for depth in (typical_depth, 1e3 * typical_depth):
            points.append(origins + dirs * depth)
    q = probe.to_field(torch.as_tensor(np.concatenate(points), dtype=torch.float64)).numpy()
    ex = float(np.abs(q[:, 0]).max() * margin)
    ey = float(np.abs(q[:, 1]).max() * margin)
    return NDCSpace(probe.pose, probe.near, probe.sx, probe.sy, (ex, ey), float(depth_scale))
