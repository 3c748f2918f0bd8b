"""Lens distortion of the OpenCV camera models: normalised image coordinates <-> distorted ones.

Coefficients are stored per view as [k1, k2, k3, k4, p1, p2] (nerfstudio's order of names):
- perspective ("OPENCV", COLMAP's OPENCV/FULL_OPENCV radial part): r' = r (1 + k1 r^2 + k2 r^4 + k3 r^6 + k4 r^8)
  plus the tangential terms p1, p2;
- fisheye ("OPENCV_FISHEYE"): theta_d = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8), with theta
  the angle from the optical axis; p1, p2 unused.
Normalised coordinates are OpenCV's (x right, y down, z forward, divided by z). Rays need the inverse (distorted pixel
-> direction), which has no closed form: it is solved by Newton's method, vectorised over all pixels.
"""

from __future__ import annotations

import numpy as np

COEFFICIENTS = ("k1", "k2", "k3", "k4", "p1", "p2")
NEWTON_STEPS = 20  # converges to <1e-9 in 5-8 steps for phone lenses; more costs little and covers strong fisheyes


def _radial(c: np.ndarray, r2: np.ndarray) -> np.ndarray:
    return 1 + r2 * (c[..., 0] + r2 * (c[..., 1] + r2 * (c[..., 2] + r2 * c[..., 3])))


def distort(x: np.ndarray, y: np.ndarray, coeffs: np.ndarray, fisheye: np.ndarray | bool) -> tuple[np.ndarray, np.ndarray]:
    """Undistorted normalised (x, y) -> distorted normalised coordinates. `coeffs` [..., 6] broadcasts with x."""
    c = np.asarray(coeffs, dtype=np.float64)
    r2 = x * x + y * y
    # perspective: radial and tangential
    radial = _radial(c, r2)
    p1, p2 = c[..., 4], c[..., 5]
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    if not np.any(fisheye):
        return xd, yd
    # fisheye: the distorted radius is the distorted angle theta_d, in the direction of (x, y)
    r = np.sqrt(r2)
    theta = np.arctan(r)
    theta_d = theta * _radial(c, theta * theta)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(r > 1e-12, theta_d / r, 1.0)
    return np.where(fisheye, x * scale, xd), np.where(fisheye, y * scale, yd)


def undistort(xd: np.ndarray, yd: np.ndarray, coeffs: np.ndarray, fisheye: np.ndarray | bool) -> tuple[np.ndarray, np.ndarray]:
    """Distorted normalised coordinates -> undistorted ones (the inverse of `distort`)."""
    c = np.asarray(coeffs, dtype=np.float64)
    if not np.any(c):
        return xd, yd
    x, y = _undistort_perspective(xd, yd, c)
    if np.any(fisheye):
        fx, fy = _undistort_fisheye(xd, yd, c)
        x, y = np.where(fisheye, fx, x), np.where(fisheye, fy, y)
    return x, y


def _undistort_perspective(xd, yd, c):
    # Newton on F(x, y) = distort(x, y) - (xd, yd) with the analytic 2x2 Jacobian
    x, y = xd.copy(), yd.copy()
    k1, k2, k3, k4, p1, p2 = (c[..., i] for i in range(6))
    for _ in range(NEWTON_STEPS):
        r2 = x * x + y * y
        radial = _radial(c, r2)
        d_radial = k1 + r2 * (2 * k2 + r2 * (3 * k3 + r2 * 4 * k4))  # d radial / d r2
        fx = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x) - xd
        fy = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y - yd
        a = radial + 2 * x * x * d_radial + 2 * p1 * y + 6 * p2 * x  # dfx/dx
        b = 2 * x * y * d_radial + 2 * p1 * x + 2 * p2 * y  # dfx/dy = dfy/dx
        d = radial + 2 * y * y * d_radial + 6 * p1 * y + 2 * p2 * x  # dfy/dy
        det = a * d - b * b
        det = np.where(np.abs(det) < 1e-12, 1e-12, det)
        x = x - (d * fx - b * fy) / det
        y = y - (a * fy - b * fx) / det
    return x, y


def _undistort_fisheye(xd, yd, c):
    theta_d = np.sqrt(xd * xd + yd * yd)
    theta = theta_d.copy()
    for _ in range(NEWTON_STEPS):
        t2 = theta * theta
        f = theta * _radial(c, t2) - theta_d
        df = 1 + t2 * (3 * c[..., 0] + t2 * (5 * c[..., 1] + t2 * (7 * c[..., 2] + t2 * 9 * c[..., 3])))
        theta = np.clip(theta - f / df, 0.0, np.pi / 2 - 1e-6)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(theta_d > 1e-12, np.tan(theta) / theta_d, 1.0)
    return xd * scale, yd * scale
