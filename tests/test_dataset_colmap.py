"""COLMAP sparse models (text and binary, read by pycolmap): poses, intrinsics and lens agree with COLMAP's own
projection; the sparse points place the box; missing images or cameras and unsupported models are clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pycolmap
import pytest
from PIL import Image

from sa3d_blender.core.data.datasets import load_dataset
from sa3d_blender.core.errors import DatasetError

W, H = 100, 80
CAMERAS = """# CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]
1 OPENCV 100 80 90 91 50.5 39.5 0.05 -0.01 0.001 0.002
2 PINHOLE 100 80 95 95 50 40
3 OPENCV_FISHEYE 100 80 70 70 50 40 0.02 -0.01 0.003 -0.001
"""


def quaternion_about_y(angle: float) -> tuple[float, float, float, float]:
    return (np.cos(angle / 2), 0.0, np.sin(angle / 2), 0.0)


def write_model(root: Path, cameras: str = CAMERAS, images=None, n_points: int = 400, binary: bool = False) -> Path:
    """A COLMAP project: images/*.png and sparse/0/{cameras,images,points3D}.txt (or .bin)."""
    images = images if images is not None else [(k, quaternion_about_y(0.2 * (k - 2)), (0.3 * k - 0.6, 0.1, 4.0),
                                                 1 + k % 3, f"view{k}.png") for k in range(5)]
    model = root / "sparse" / "0"
    model.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    (model / "cameras.txt").write_text(cameras)
    lines = ["# IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME"]
    for image_id, q, t, camera_id, name in images:
        lines += [f"{image_id} {' '.join(map(str, q))} {' '.join(map(str, t))} {camera_id} {name}", ""]
        Image.new("RGB", (W, H), (120, 90, 60)).save(root / "images" / name)
    (model / "images.txt").write_text("\n".join(lines) + "\n")
    points = np.random.default_rng(0).uniform(-0.5, 0.5, size=(n_points, 3)) * [1.0, 0.6, 0.4] + [0.2, 0.0, 0.0]
    (model / "points3D.txt").write_text("".join(f"{k + 1} {x} {y} {z} 128 128 128 0.5\n" for k, (x, y, z) in enumerate(points)))
    if binary:
        reconstruction = pycolmap.Reconstruction(str(model))
        for name in ("cameras", "images", "points3D"):
            (model / f"{name}.txt").unlink()
        reconstruction.write_binary(str(model))
    return root


@pytest.mark.parametrize("binary", [False, True])
def test_colmap_model_projects_like_colmap(tmp_path, binary):
    root = write_model(tmp_path, binary=binary)
    dataset = load_dataset(root)
    assert dataset.format == "colmap" and dataset.cameras.names == [f"view{k}" for k in range(5)]
    assert dataset.cameras.fisheye.tolist() == [False, False, True, False, False]  # camera 1 + k % 3
    reconstruction = pycolmap.Reconstruction(str(root / "sparse" / "0"))
    points = np.random.default_rng(1).uniform(-0.4, 0.4, size=(50, 3))
    for image in reconstruction.images.values():
        i = dataset.cameras.index(Path(image.name).stem)
        ours, depth = dataset.cameras.project(i, points)
        theirs = np.array([image.project_point(p) for p in points])
        assert np.all(depth > 0)
        np.testing.assert_allclose(ours, theirs, atol=1e-3)


def test_colmap_points_place_the_box_and_the_depth_range(tmp_path):
    dataset = load_dataset(write_model(tmp_path))
    lo, hi = dataset.bbox
    # points fill [-0.3, 0.7] x [-0.3, 0.3] x [-0.2, 0.2]; the box is their 2-98 % range plus a 10 % margin
    assert np.all(lo < [-0.2, -0.2, -0.1]) and np.all(lo > [-0.5, -0.5, -0.4])
    assert np.all(hi > [0.6, 0.2, 0.1]) and np.all(hi < [0.9, 0.5, 0.4])
    assert dataset.near is not None and np.all((dataset.near > 3.0) & (dataset.near < 4.5))


def test_colmap_missing_image_names_the_file(tmp_path):
    root = write_model(tmp_path)
    (root / "images" / "view3.png").unlink()
    with pytest.raises(DatasetError, match="view3.png.*image of COLMAP view view3.png not found"):
        load_dataset(root)


def test_colmap_image_of_a_missing_camera(tmp_path):
    images = [(1, (1, 0, 0, 0), (0, 0, 4), 1, "a.png"), (2, (1, 0, 0, 0), (0.5, 0, 4), 9, "b.png")]
    root = write_model(tmp_path, images=images)
    with pytest.raises(DatasetError, match="sparse/0.*(camera 9|not a readable COLMAP model)"):
        load_dataset(root)


def test_colmap_unsupported_camera_model(tmp_path):
    root = write_model(tmp_path, cameras="1 FOV 100 80 90 90 50 40 0.1\n2 PINHOLE 100 80 95 95 50 40\n"
                                         "3 PINHOLE 100 80 95 95 50 40\n")
    with pytest.raises(DatasetError, match="cameras.txt: camera 1: COLMAP camera model FOV is not supported"):
        load_dataset(root)


def test_colmap_folder_without_images_file(tmp_path):
    root = write_model(tmp_path)
    (root / "sparse" / "0" / "images.txt").unlink()
    with pytest.raises(DatasetError, match="no transforms.json.*COLMAP model"):
        load_dataset(root)
