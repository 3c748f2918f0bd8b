"""Pinhole cameras of a capture in one convention (OpenGL/Blender axes): projection, pixel rays, lookup by view name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import PromptError
from .lens import COEFFICIENTS, distort, undistort

# How far R^T R may be from the identity before a pose counts as not rigid. Poses written with 6 decimals are ~1e-6 off;
# a camera scaled by 1 % in Blender is 2e-2 off.
RIGID_TOLERANCE = 1e-3


@dataclass
class Cameras:
    """N perspective or fisheye cameras with OpenCV lens distortion. c2w uses camera axes +x right, +y up, looking along -z (OpenGL, Blender).

    Pixel coordinates have their origin at the top-left corner of the image: pixel (col j, row i) covers
    [j, j+1] x [i, i+1] and its centre is (j+0.5, i+0.5); x grows to the right, y downwards.
    """

    c2w: np.ndarray  # [N,4,4] float64 camera-to-world
    fx: np.ndarray  # [N] float64, pixels
    fy: np.ndarray  # [N]
    cx: np.ndarray  # [N] principal point, pixels
    cy: np.ndarray  # [N]
    width: np.ndarray  # [N] int
    height: np.ndarray  # [N] int
    names: list[str]  # unique view names
    image_paths: list[Path | None]
    distortion: np.ndarray | None = None  # [N,6] k1, k2, k3, k4, p1, p2 (lens.py); zeros if none
    fisheye: np.ndarray | None = None  # [N] bool: OPENCV_FISHEYE model

    def __post_init__(self) -> None:
        self.c2w = np.asarray(self.c2w, dtype=np.float64).reshape(-1, 4, 4)
        n = len(self.c2w)
        for name in ("fx", "fy", "cx", "cy"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64).reshape(n))
        self.width = np.asarray(self.width, dtype=np.int64).reshape(n)
        self.height = np.asarray(self.height, dtype=np.int64).reshape(n)
        if self.distortion is None:
            self.distortion = np.zeros((n, len(COEFFICIENTS)))
        self.distortion = np.asarray(self.distortion, dtype=np.float64).reshape(n, len(COEFFICIENTS))
        self.fisheye = np.zeros(n, dtype=bool) if self.fisheye is None else np.asarray(self.fisheye, dtype=bool).reshape(n)
        self.names = list(self.names)
        self.image_paths = [None if p is None else Path(p) for p in self.image_paths]
        if len(self.names) != n or len(self.image_paths) != n:
            raise ValueError(f"Cameras: {n} poses but {len(self.names)} names and {len(self.image_paths)} image paths")
        if len(set(self.names)) != n:
            raise ValueError("Cameras: view names must be unique")

    def __len__(self) -> int:
        return len(self.c2w)

    def to_dict(self) -> dict:
        """Plain lists (JSON): how the worker hands cameras to Blender, which cannot read the datasets itself."""
        return {"names": list(self.names), "c2w": self.c2w.tolist(), "fx": self.fx.tolist(), "fy": self.fy.tolist(),
                "cx": self.cx.tolist(), "cy": self.cy.tolist(), "width": self.width.tolist(),
                "height": self.height.tolist(), "image_paths": [None if p is None else str(p) for p in self.image_paths],
                "distortion": self.distortion.tolist(), "fisheye": self.fisheye.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> Cameras:
        """The inverse of to_dict (other keys of `data` are ignored)."""
        return cls(**{key: data[key] for key in ("c2w", "fx", "fy", "cx", "cy", "width", "height", "names",
                                                  "image_paths", "distortion", "fisheye")})

    def subset(self, indices) -> Cameras:
        """The cameras at `indices` (an int array, list or boolean mask), in that order."""
        idx = np.arange(len(self))[np.asarray(indices)].reshape(-1)
        return Cameras(
            c2w=self.c2w[idx].copy(),
            fx=self.fx[idx].copy(),
            fy=self.fy[idx].copy(),
            cx=self.cx[idx].copy(),
            cy=self.cy[idx].copy(),
            width=self.width[idx].copy(),
            height=self.height[idx].copy(),
            names=[self.names[k] for k in idx],
            image_paths=[self.image_paths[k] for k in idx],
            distortion=self.distortion[idx].copy(),
            fisheye=self.fisheye[idx].copy(),
        )

    def scaled(self, factors) -> Cameras:
        """The same cameras for images resized by `factors` [N] (or one factor): intrinsics and sizes scaled, pixel
        grid kept (pixel centres map to the same rays). Sizes are rounded down (a pixel budget stays a bound), so the
        factor per axis is the size ratio."""
        factors = np.broadcast_to(np.asarray(factors, dtype=np.float64), (len(self),))
        width = np.maximum(1, np.floor(self.width * factors + 1e-9)).astype(np.int64)
        height = np.maximum(1, np.floor(self.height * factors + 1e-9)).astype(np.int64)
        sx, sy = width / self.width, height / self.height
        return Cameras(c2w=self.c2w.copy(), fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy,
                       width=width, height=height, names=self.names, image_paths=self.image_paths,
                       distortion=self.distortion.copy(), fisheye=self.fisheye.copy())

    @property
    def distorted(self) -> bool:
        return bool(np.any(self.distortion != 0))

    def project(self, i: int, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points [P,3] -> (pixel xy [P,2], depth [P] along the viewing axis, > 0 in front of camera i)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        rotation, centre = self.c2w[i, :3, :3], self.c2w[i, :3, 3]
        local = (points - centre) @ rotation  # row-vector form of R^T (p - c)
        depth = -local[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            # OpenCV normalised coordinates: camera +y is up while image rows grow downwards
            x, y = distort(local[:, 0] / depth, -local[:, 1] / depth, self.distortion[i], self.fisheye[i])
        return np.stack([self.cx[i] + self.fx[i] * x, self.cy[i] + self.fy[i] * y], axis=1), depth

    def pixel_rays(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Rays through the pixel centres of view i, row-major: origins [H*W,3], unit directions [H*W,3], float32."""
        w, h = int(self.width[i]), int(self.height[i])
        pixel = np.arange(h * w)
        return self.rays(np.full(h * w, i), pixel % w + 0.5, pixel // w + 0.5)

    def rays(self, views: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rays through pixel positions (x, y) of `views` (arrays of one length, views mixed freely), undistorted
        through each view's lens: origins [P,3], unit directions [P,3], float32."""
        views = np.asarray(views, dtype=np.int64)
        xn = (np.asarray(x, dtype=np.float64) - self.cx[views]) / self.fx[views]
        yn = (np.asarray(y, dtype=np.float64) - self.cy[views]) / self.fy[views]
        if self.distorted:
            xn, yn = undistort(xn, yn, self.distortion[views], self.fisheye[views])
        local = np.stack([xn, -yn, -np.ones_like(xn)], axis=1)
        directions = np.einsum("pij,pj->pi", self.c2w[views, :3, :3], local)
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        return self.c2w[views, :3, 3].astype(np.float32), directions.astype(np.float32)

    def index(self, name: str) -> int:
        """Index of the view called `name`; PromptError listing a few valid names when there is none."""
        try:
            return self.names.index(name)
        except ValueError:
            shown = ", ".join(self.names[:5]) + (", ..." if len(self.names) > 5 else "")
            raise PromptError(f"unknown view '{name}': the {len(self.names)} views are named {shown}") from None


def rigid_pose_problem(matrix: np.ndarray) -> str | None:
    """Why a camera-to-world matrix is unusable (not 4x4, non-finite, not a rotation + translation), or None.

    A uniform scale is rejected too rather than divided out: every NeRF tool writes rigid poses, and a scaled one
    (typically a Blender camera object with scale != 1) would make depths and ray lengths disagree with world units.
    """
    matrix = np.asarray(matrix)
    if matrix.shape != (4, 4):
        return f"transform_matrix has shape {'x'.join(map(str, matrix.shape))}, expected 4x4"
    if not np.all(np.isfinite(matrix)):
        return "transform_matrix has non-finite values"
    if not np.allclose(matrix[3], [0, 0, 0, 1], atol=RIGID_TOLERANCE):
        return f"transform_matrix bottom row is {matrix[3].tolist()}, expected [0, 0, 0, 1]"
    return rotation_problem(matrix[:3, :3])


def rotation_problem(rotation: np.ndarray) -> str | None:
    """Why a 3x3 matrix is not a proper rotation (scaled, sheared or mirrored), or None."""
    scales = np.linalg.norm(rotation, axis=0)
    if np.any(np.abs(scales - 1.0) > RIGID_TOLERANCE):
        return (
            f"rotation part is scaled (column lengths {np.round(scales, 4).tolist()}, expected 1); "
            "poses must be rigid: apply the camera's scale (Blender: Ctrl+A > Scale) before exporting"
        )
    error = np.abs(rotation.T @ rotation - np.eye(3)).max()
    if error > RIGID_TOLERANCE:
        return f"rotation part is not orthonormal (R^T R differs from identity by {error:.2g})"
    if np.linalg.det(rotation) < 0:
        return "rotation part is a reflection (determinant -1)"
    return None
