"""Read transforms.json captures (original NeRF synthetic, instant-ngp, nerfstudio) into Cameras, splits and a bbox.

Poses stay in the file's world coordinates: instant-ngp's `scale`/`offset`/`aabb_scale` only rescale its own internal
cube, and nerfstudio's `applied_transform` is already baked into the frames (it is kept for reference only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .cameras import Cameras, rigid_pose_problem
from .dataset_files import image_size, read_json, resolve_image
from .dataset_parsed import ParsedScene
from .lens import COEFFICIENTS as DISTORTION_KEYS


SPLITS = ("train", "val", "test")
SUPPORTED_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "OPENCV_FISHEYE")
NOT_SUPPORTED_MODELS = ("FISHEYE624", "EQUIRECTANGULAR")
# keys a nerfstudio frame may set for itself, overriding the file's top level
INTRINSIC_KEYS = ("camera_model", "fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x", "camera_angle_y")


@dataclass
class _View:
    """One frame, read and checked, before the frames become one Cameras."""

    where: str  # "frame 3 (images/0003.png)" in transforms.json
    source: Path
    c2w: np.ndarray
    intrinsics: tuple[float, float, float, float]  # fx, fy, cx, cy
    size: tuple[int, int]  # width, height of the image file
    declared_size: bool  # the file states w and h (else the size comes from the image only)
    distortion: np.ndarray
    fisheye: bool
    image_path: Path


def read_transforms_json(path: Path) -> ParsedScene:
    """One transforms.json (instant-ngp or nerfstudio flavour, or a single original-NeRF file)."""
    data = read_json(path)
    views = _read_views(path, data)
    cameras = _cameras_from_views(path, views)
    return ParsedScene(
        source=path,
        format=_flavour(data),
        cameras=cameras,
        splits=_split_from_filenames(path, data, cameras),
        bbox=_optional_aabb(path, data),
        applied_transform=_optional_applied_transform(path, data),
        background=_optional_background(path, data),
        reduced_images=_reduced_image_folders(cameras.image_paths),
        points=_optional_points(path, data),
    )


def _optional_points(path: Path, data: dict) -> np.ndarray | None:
    """nerfstudio's sparse point cloud (`ply_file_path`, usually sparse_pc.ply), when the file names one or it is there."""
    name = data.get("ply_file_path", "sparse_pc.ply")
    ply = path.parent / name if isinstance(name, str) else None
    if ply is None or not ply.is_file():
        if "ply_file_path" in data:
            raise DatasetError(path, f"'ply_file_path' names {name!r}, which is not a file beside it")
        return None
    import trimesh  # only for captures that have a point cloud

    try:
        points = np.asarray(trimesh.load(ply, process=False).vertices, dtype=np.float64)
    except Exception as exc:  # trimesh raises many types for a malformed PLY
        raise DatasetError(ply, f"not a readable point cloud: {exc}") from None
    return points.reshape(-1, 3) if len(points) else None


def _reduced_image_folders(image_paths: list[Path]) -> list[list[Path]]:
    """nerfstudio's images_2/, images_4/, images_8/ beside images/, when they hold every frame under the same name."""
    folders = {p.parent for p in image_paths}
    if len(folders) != 1 or next(iter(folders)).name != "images":
        return []
    found = []
    for factor in (2, 4, 8):
        paths = [p.parent.with_name(f"images_{factor}") / p.name for p in image_paths]
        if all(p.is_file() for p in paths):
            found.append(paths)
    return found


def read_nerf_synthetic(root: Path) -> ParsedScene:
    """The original NeRF layout: transforms_train.json (+ _val, _test), one file per split, sharing one world."""
    views: list[_View] = []
    splits: dict[str, np.ndarray] = {}
    first = root / "transforms_train.json"
    background = None
    for split in SPLITS:
        path = root / f"transforms_{split}.json"
        if split != "train" and not path.is_file():
            continue
        data = read_json(path)
        split_views = _read_views(path, data)
        splits[split] = np.arange(len(views), len(views) + len(split_views))
        views += split_views
        if split == "train":
            background = _optional_background(path, data)
    return ParsedScene(
        source=first,
        format="nerf_synthetic",
        cameras=_cameras_from_views(first, views),
        splits=splits,
        background=background,
    )


def _flavour(data: dict) -> str:
    nerfstudio_keys = ("camera_model", "applied_transform", "train_filenames", "test_filenames")
    return "nerfstudio" if any(key in data for key in nerfstudio_keys) else "instant_ngp"


def _read_views(path: Path, data: dict) -> list[_View]:
    frames = data.get("frames")
    if frames is None:
        raise DatasetError(path, "no 'frames' key: a transforms file lists its views under 'frames'")
    if not isinstance(frames, list):
        raise DatasetError(path, f"'frames' must be a list, found {type(frames).__name__}")
    if not frames:
        raise DatasetError(path, "'frames' is empty: the file lists no views")
    if data.get("is_fisheye"):
        raise DatasetError(path, "fisheye cameras (is_fisheye) are not supported; only perspective cameras are")
    views = [_read_view(path, data, k, frame) for k, frame in enumerate(frames)]
    if not any(view.declared_size for view in views):
        # without declared sizes the focal length from camera_angle_x depends on each file, so they must agree
        for view in views[1:]:
            if view.size != views[0].size:
                raise DatasetError(
                    path,
                    f"{view.where}: image {view.image_path} is {_size_text(view.size)} but "
                    f"{views[0].where} is {_size_text(views[0].size)}; all images must have the same size",
                )
    return views


def _read_view(path: Path, data: dict, k: int, frame) -> _View:
    if not isinstance(frame, dict):
        raise DatasetError(path, f"frame {k} must be a JSON object, found {type(frame).__name__}")
    file_path = frame.get("file_path")
    if not isinstance(file_path, str) or not file_path:
        raise DatasetError(path, f"frame {k} has no 'file_path'")
    where = f"frame {k} ({file_path})"
    if "transform_matrix" not in frame:
        raise DatasetError(path, f"{where} has no 'transform_matrix'")
    try:
        c2w = np.array(frame["transform_matrix"], dtype=np.float64)
    except (TypeError, ValueError):
        raise DatasetError(path, f"{where}: transform_matrix is not a 4x4 array of numbers") from None
    problem = rigid_pose_problem(c2w)
    if problem:
        raise DatasetError(path, f"{where}: {problem}")

    params = {key: frame.get(key, data.get(key)) for key in INTRINSIC_KEYS + DISTORTION_KEYS}
    model = params["camera_model"] or "OPENCV"
    if model in NOT_SUPPORTED_MODELS:
        raise DatasetError(
            path,
            f"{where}: camera_model {model} is not supported; supported: {', '.join(SUPPORTED_MODELS)}",
        )
    if model not in SUPPORTED_MODELS:
        raise DatasetError(
            path, f"{where}: unknown camera_model '{model}'; supported: {', '.join(SUPPORTED_MODELS)}"
        )

    image_path = resolve_image(path.parent / file_path)
    if image_path is None:
        raise DatasetError(
            path, f"{where}: image file {path.parent / file_path} not found (also tried adding .png, .jpg, .jpeg)"
        )
    size = image_size(image_path)
    declared = params["w"] is not None and params["h"] is not None
    if declared:
        declared_size = (_number(path, where, "w", params["w"]), _number(path, where, "h", params["h"]))
        if declared_size != size:
            raise DatasetError(
                path,
                f"{where}: image {image_path} is {_size_text(size)} but the file declares w x h = "
                f"{_size_text(declared_size)}",
            )
    width, height = size
    fx, fy = _focal_lengths(path, where, params, width, height)
    cx = _number(path, where, "cx", params["cx"], positive=False) if params["cx"] is not None else width / 2
    cy = _number(path, where, "cy", params["cy"], positive=False) if params["cy"] is not None else height / 2
    distortion = np.array(
        [_number(path, where, key, params[key] or 0.0, positive=False) for key in DISTORTION_KEYS]
    )
    return _View(where, path, c2w, (fx, fy, cx, cy), size, declared, distortion, model == "OPENCV_FISHEYE", image_path)


def _focal_lengths(path: Path, where: str, params: dict, width: int, height: int) -> tuple[float, float]:
    if params["fl_x"] is not None:
        fx = _number(path, where, "fl_x", params["fl_x"])
    elif params["camera_angle_x"] is not None:
        fx = 0.5 * width / math.tan(0.5 * _angle(path, where, "camera_angle_x", params["camera_angle_x"]))
    else:
        raise DatasetError(path, f"{where}: no focal length (needs 'fl_x' or 'camera_angle_x')")
    if params["fl_y"] is not None:
        fy = _number(path, where, "fl_y", params["fl_y"])
    elif params["camera_angle_y"] is not None:
        fy = 0.5 * height / math.tan(0.5 * _angle(path, where, "camera_angle_y", params["camera_angle_y"]))
    else:
        fy = fx  # square pixels, as instant-ngp and nerfstudio assume
    return fx, fy


def _number(path: Path, where: str, key: str, value, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DatasetError(path, f"{where}: '{key}' must be a finite number, found {value!r}")
    if positive and value <= 0:
        raise DatasetError(path, f"{where}: '{key}' must be positive, found {value!r}")
    return value


def _angle(path: Path, where: str, key: str, value) -> float:
    angle = _number(path, where, key, value)
    if angle >= math.pi:
        raise DatasetError(path, f"{where}: '{key}' is {angle} radians; a field of view must be below pi")
    return angle


def _size_text(size: tuple) -> str:
    return f"{size[0]}x{size[1]}"


def _cameras_from_views(path: Path, views: list[_View]) -> Cameras:
    seen: dict[Path, _View] = {}
    for view in views:
        key = view.image_path.resolve()
        if key in seen:
            raise DatasetError(
                path, f"duplicate view: {seen[key].where} and {view.where} both use the image {view.image_path}"
            )
        seen[key] = view
    distortion = np.stack([view.distortion for view in views])
    intrinsics = np.array([view.intrinsics for view in views])
    return Cameras(
        c2w=np.stack([view.c2w for view in views]),
        fx=intrinsics[:, 0],
        fy=intrinsics[:, 1],
        cx=intrinsics[:, 2],
        cy=intrinsics[:, 3],
        width=[view.size[0] for view in views],
        height=[view.size[1] for view in views],
        names=_view_names(path.parent, [view.image_path for view in views]),
        image_paths=[view.image_path for view in views],
        distortion=distortion,
        fisheye=[view.fisheye for view in views],
    )


def _view_names(root: Path, image_paths: list[Path]) -> list[str]:
    """Image file stems; when stems repeat (NeRF synthetic has train/r_0 and test/r_0), the path below root instead."""
    stems = [p.stem for p in image_paths]
    if len(set(stems)) == len(stems):
        return stems
    names = []
    for p in image_paths:
        try:
            names.append(p.with_suffix("").relative_to(root).as_posix())
        except ValueError:  # an absolute file_path outside the dataset folder
            names.append(p.with_suffix("").as_posix())
    return names


def _split_from_filenames(path: Path, data: dict, cameras: Cameras) -> dict[str, np.ndarray] | None:
    """nerfstudio's train_filenames / val_filenames / test_filenames, as view indices."""
    if not any(f"{split}_filenames" in data for split in SPLITS):
        return None
    index_of = {p.resolve(): i for i, p in enumerate(cameras.image_paths)}
    splits = {}
    for split in SPLITS:
        entries = data.get(f"{split}_filenames", [])
        if not isinstance(entries, list):
            raise DatasetError(path, f"'{split}_filenames' must be a list of file paths")
        indices = []
        for entry in entries:
            image_path = resolve_image(path.parent / str(entry))
            if image_path is None or image_path.resolve() not in index_of:
                raise DatasetError(
                    path, f"'{split}_filenames' lists {entry!r}, which is not the file_path of any frame"
                )
            indices.append(index_of[image_path.resolve()])
        splits[split] = np.array(sorted(set(indices)), dtype=np.int64)
    if len(splits["train"]) == 0:
        raise DatasetError(path, "'train_filenames' is missing or empty while other split lists are given")
    return splits


def _optional_aabb(path: Path, data: dict) -> np.ndarray | None:
    if "aabb" not in data:
        return None
    try:
        aabb = np.array(data["aabb"], dtype=np.float64)
    except (TypeError, ValueError):
        aabb = None
    if aabb is None or aabb.shape != (2, 3) or not np.all(np.isfinite(aabb)) or np.any(aabb[0] >= aabb[1]):
        raise DatasetError(
            path, f"'aabb' must be [[xmin, ymin, zmin], [xmax, ymax, zmax]] with min < max, found {data['aabb']!r}"
        )
    return aabb


def _optional_applied_transform(path: Path, data: dict) -> np.ndarray | None:
    if "applied_transform" not in data:
        return None
    try:
        matrix = np.array(data["applied_transform"], dtype=np.float64)
    except (TypeError, ValueError):
        matrix = None
    if matrix is None or matrix.shape not in ((3, 4), (4, 4)) or not np.all(np.isfinite(matrix)):
        raise DatasetError(path, "'applied_transform' must be a 3x4 matrix of finite numbers")
    return matrix[:3]


def _optional_background(path: Path, data: dict) -> np.ndarray | None:
    if "background_color" not in data:
        return None
    try:
        colour = np.array(data["background_color"], dtype=np.float64)
    except (TypeError, ValueError):
        colour = None
    if colour is None or colour.shape != (3,) or not np.all((colour >= 0) & (colour <= 1)):
        raise DatasetError(path, f"'background_color' must be 3 numbers in [0, 1], found {data['background_color']!r}")
    return colour
