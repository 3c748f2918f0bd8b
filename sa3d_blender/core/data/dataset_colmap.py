"""Read a COLMAP sparse model (cameras, images, points3D as .bin or .txt, read by pycolmap) with its images folder.

Layouts found from any of: the project folder (holding images/ and sparse/0/ or sparse/), or the model folder itself.
Poses become OpenGL camera-to-world matrices; OpenCV-family lens models become the Cameras' distortion; the sparse
points are kept for the reconstruction box and the per-view depth range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .cameras import Cameras
from .dataset_files import image_size
from .dataset_parsed import ParsedScene

MODEL_FILES = ("cameras", "images", "points3D")
# COLMAP model name -> (names of its parameters, fisheye); k1..k4, p1, p2 missing from a model are zero
MODELS = {
    "SIMPLE_PINHOLE": (("f", "cx", "cy"), False),
    "PINHOLE": (("fx", "fy", "cx", "cy"), False),
    "SIMPLE_RADIAL": (("f", "cx", "cy", "k1"), False),
    "RADIAL": (("f", "cx", "cy", "k1", "k2"), False),
    "OPENCV": (("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2"), False),
    "OPENCV_FISHEYE": (("fx", "fy", "cx", "cy", "k1", "k2", "k3", "k4"), True),
    "SIMPLE_RADIAL_FISHEYE": (("f", "cx", "cy", "k1"), True),
    "RADIAL_FISHEYE": (("f", "cx", "cy", "k1", "k2"), True),
}
# OpenCV camera axes (x right, y down, z forward) -> OpenGL (x right, y up, z backward)
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])


def find_model(path: Path) -> Path | None:
    """The COLMAP model folder at or under `path` (path, path/sparse/0, path/sparse), or None."""
    for folder in (path, path / "sparse" / "0", path / "sparse"):
        if all(_model_file(folder, name) is not None for name in MODEL_FILES[:2]):
            return folder
    return None


def _model_file(folder: Path, name: str) -> Path | None:
    return next((folder / f"{name}{suffix}" for suffix in (".bin", ".txt") if (folder / f"{name}{suffix}").is_file()), None)


def read_colmap(model: Path) -> ParsedScene:
    """A COLMAP model folder (cameras and images required, points3D optional) with its images."""
    for name in MODEL_FILES[:2]:
        if _model_file(model, name) is None:
            raise DatasetError(model, f"COLMAP model has no {name}.bin or {name}.txt")
    try:
        import pycolmap
    except ModuleNotFoundError:
        raise DatasetError(model, "reading COLMAP models needs pycolmap: pip install pycolmap") from None
    try:
        reconstruction = pycolmap.Reconstruction(str(model))
    except Exception as exc:  # pycolmap raises plain RuntimeError / ValueError with COLMAP's message
        raise DatasetError(model, f"not a readable COLMAP model: {exc}") from None
    image_root = _image_folder(model)
    images = sorted(reconstruction.images.values(), key=lambda image: image.name)
    if not images:
        raise DatasetError(_model_file(model, "images"), "the COLMAP model holds no images")
    c2w, intrinsics, distortion, fisheye, sizes, paths = [], [], [], [], [], []
    for image in images:
        if image.camera_id not in reconstruction.cameras:
            raise DatasetError(_model_file(model, "images"),
                               f"image {image.name} refers to camera {image.camera_id}, which cameras lacks")
        camera = reconstruction.cameras[image.camera_id]
        fx, fy, cx, cy, coeffs, is_fisheye = _intrinsics(_model_file(model, "cameras"), camera)
        path = image_root / image.name
        if not path.is_file():
            raise DatasetError(path, f"image of COLMAP view {image.name} not found in {image_root}")
        size = image_size(path)
        if size != (camera.width, camera.height):
            raise DatasetError(path, f"image is {size[0]}x{size[1]} but COLMAP camera {image.camera_id} is "
                                     f"{camera.width}x{camera.height}")
        cam_from_world = image.cam_from_world()
        world_from_cam = np.eye(4)
        world_from_cam[:3, :4] = np.asarray(cam_from_world.inverse().matrix(), dtype=np.float64)
        c2w.append(world_from_cam @ OPENCV_TO_OPENGL)
        intrinsics.append((fx, fy, cx, cy))
        distortion.append(coeffs)
        fisheye.append(is_fisheye)
        sizes.append(size)
        paths.append(path)
    intrinsics, sizes = np.array(intrinsics), np.array(sizes)
    cameras = Cameras(c2w=np.stack(c2w), fx=intrinsics[:, 0], fy=intrinsics[:, 1], cx=intrinsics[:, 2],
                      cy=intrinsics[:, 3], width=sizes[:, 0], height=sizes[:, 1],
                      names=[Path(image.name).with_suffix("").as_posix() for image in images], image_paths=paths,
                      distortion=np.array(distortion), fisheye=fisheye)
    points = np.array([p.xyz for p in reconstruction.points3D.values()], dtype=np.float64).reshape(-1, 3)
    return ParsedScene(source=model, format="colmap", cameras=cameras, points=points if len(points) else None)


def _image_folder(model: Path) -> Path:
    for root in (model.parent.parent, model.parent, model):
        if (root / "images").is_dir():
            return root / "images"
    raise DatasetError(model, "no images/ folder beside the COLMAP model (looked in its parent folders)")


def _intrinsics(source: Path, camera) -> tuple[float, float, float, float, list[float], bool]:
    model = camera.model_name if isinstance(camera.model_name, str) else str(camera.model_name)
    if model not in MODELS:
        raise DatasetError(source, f"camera {camera.camera_id}: COLMAP camera model {model} is not supported; "
                                   f"supported: {', '.join(MODELS)}")
    names, is_fisheye = MODELS[model]
    values = dict(zip(names, np.asarray(camera.params, dtype=np.float64).tolist()))
    fx = values.get("fx", values.get("f"))
    fy = values.get("fy", values.get("f"))
    coeffs = [values.get(key, 0.0) for key in ("k1", "k2", "k3", "k4", "p1", "p2")]
    return fx, fy, values["cx"], values["cy"], coeffs, is_fisheye
