"""Benchmark: how the rasterizer's time grows with faces and pixels, measured in one run: spheres of 5k, 20k and 82k
faces seen by 160- and 640-px cameras and laid out on a 1024-px texture atlas (what `eval` and texture baking draw).
Prints the median seconds over --repeats and the ratio to the smallest case of each kind.

    python scripts/bench_rasterize.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import trimesh  # noqa: E402

from sa3d_blender.core.mesh.rasterize import rasterize  # noqa: E402
from sa3d_blender.core.mesh.texture import unwrap  # noqa: E402


def median_seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def camera_view(mesh: trimesh.Trimesh, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions and depths of the mesh's vertices in a pinhole camera 3 radii away, the mesh filling ~60 %."""
    eye = np.array([0.0, -3.0, 0.0])
    local = np.asarray(mesh.vertices) - eye
    depth = local[:, 1]
    focal = 0.6 * size * 3.0 / 2.0
    xy = np.stack([size / 2 + focal * local[:, 0] / depth, size / 2 - focal * local[:, 2] / depth], 1)
    return xy, depth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{'case':<16} {'faces':>7} {'covered px':>11} {'seconds':>8} {'ratio':>7}")
    first = {}
    for subdivisions in (4, 5, 6):
        mesh = trimesh.creation.icosphere(subdivisions=subdivisions)
        # xatlas crashes on the exactly regular 82k-face icosphere (measured; real meshes of 209k faces unwrap): jitter
        mesh.vertices += np.random.default_rng(subdivisions).normal(0.0, 1e-4, mesh.vertices.shape)
        cases = [(f"camera {size} px", *camera_view(mesh, size), np.asarray(mesh.faces), (size, size))
                 for size in (160, 640)]
        _, atlas_faces, uv = unwrap(mesh)
        cases.append(("atlas 1024 px", np.stack([uv[:, 0], 1 - uv[:, 1]], 1) * 1024, None, atlas_faces, (1024, 1024)))
        for name, points, depth, faces, size in cases:
            seconds = median_seconds(lambda: rasterize(points, faces, size, depth), args.repeats)
            covered = int((rasterize(points, faces, size, depth)[0] >= 0).sum())
            first.setdefault(name, seconds)
            print(f"{name:<16} {len(faces):>7} {covered:>11} {seconds:>8.3f} {seconds / first[name]:>7.1f}")


if __name__ == "__main__":
    main()
