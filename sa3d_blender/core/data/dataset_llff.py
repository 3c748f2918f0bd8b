"""Read LLFF captures (poses_bounds.npy + images/) into OpenGL-convention Cameras and a bbox from the depth bounds.

Poses stay in the file's (COLMAP) world coordinates: no recentring or rescaling as the LLFF training code does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .cameras import Cameras, rotation_problem
from .dataset_bbox import bbox_from_depth_range
from .dataset_files import image_size
from .dataset_parsed import ParsedScene

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# image folders of an LLFF capture, full size first: the usual download holds only the downsampled ones
IMAGE_FOLDERS = ("images", "images_2", "images_4", "images_8")
# The region at full resolution (the bbox) ends at this multiple of each view's near bound; beyond it the field's
# contracted shell holds the rest up to the far bound. LLFF's near bound is the closest scene point (flower 22.6,
# far 215): the objects people segment are in front, close to it.
INNER_DEPTH_RATIO = 3.0
# downsampled images (images_4/ ...) are rounded to whole pixels; allow that much disagreement with the hwf aspect
ROUNDING_PIXELS = 1.0


def read_poses_bounds(path: Path, image_dir: str | None = None) -> ParsedScene:
    """poses_bounds.npy with its images in `image_dir` (default: the largest of images, images_2, images_4,
    images_8 that exists); the smaller folders are kept as alternatives to read reduced images from."""
    rows = _load_rows(path)
    poses = rows[:, :15].reshape(-1, 3, 5)
    near, far = rows[:, 15], rows[:, 16]
    c2w = _opengl_c2w(path, poses[:, :, :4])
    bad_bounds = np.flatnonzero((near <= 0) | (far <= near))
    if bad_bounds.size:
        k = bad_bounds[0]
        raise DatasetError(path, f"row {k}: depth bounds near={near[k]:g}, far={far[k]:g}; need 0 < near < far")

    if image_dir is None:
        image_dir = next((name for name in IMAGE_FOLDERS if (path.parent / name).is_dir()), None)
        if image_dir is None:
            raise DatasetError(path, f"no image folder beside it (looked for {', '.join(IMAGE_FOLDERS)})")
    image_paths = _folder_images(path, path.parent / image_dir, len(rows))
    smaller = [name for name in IMAGE_FOLDERS[IMAGE_FOLDERS.index(image_dir) + 1:] if image_dir in IMAGE_FOLDERS
               and (path.parent / name).is_dir()]
    alternatives = [_folder_images(path, path.parent / name, len(rows)) for name in smaller]

    full_height, full_width, focal = poses[:, 0, 4], poses[:, 1, 4], poses[:, 2, 4]
    sizes = np.array([image_size(p) for p in image_paths])
    scale_x = sizes[:, 0] / full_width
    scale_y = sizes[:, 1] / full_height
    off_aspect = np.flatnonzero(np.abs(scale_y * full_width - sizes[:, 0]) > ROUNDING_PIXELS)
    if off_aspect.size:
        k = off_aspect[0]
        raise DatasetError(
            path,
            f"image {image_paths[k]} is {sizes[k, 0]}x{sizes[k, 1]}, not a downscale of the "
            f"{full_width[k]:g}x{full_height[k]:g} the poses were computed for",
        )
    cameras = Cameras(
        c2w=c2w,
        fx=focal * scale_x,
        fy=focal * scale_y,
        cx=sizes[:, 0] / 2,  # LLFF assumes the principal point at the image centre
        cy=sizes[:, 1] / 2,
        width=sizes[:, 0],
        height=sizes[:, 1],
        names=[p.stem for p in image_paths],
        image_paths=image_paths,
    )
    return ParsedScene(source=path, format="llff", cameras=cameras, bbox=bbox_from_depth_range(cameras, near, np.minimum(far, INNER_DEPTH_RATIO * near)),
                       forward_facing=True, depth_range=(near, far), reduced_images=alternatives)


def _folder_images(path: Path, folder: Path, count: int) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(path, f"image folder {folder} not found")
    image_paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(image_paths) != count:
        raise DatasetError(path, f"{count} poses but {len(image_paths)} images in {folder}")
    return image_paths


def _load_rows(path: Path) -> np.ndarray:
    try:
        rows = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DatasetError(path, "file not found") from None
    except (OSError, ValueError) as error:
        raise DatasetError(path, f"not a readable .npy array: {error}") from None
    if rows.ndim != 2 or rows.shape[1] != 17:
        raise DatasetError(path, f"array has shape {rows.shape}, expected [N, 17] (3x5 pose + near, far per view)")
    if len(rows) == 0:
        raise DatasetError(path, "the file holds no views")
    if not np.issubdtype(rows.dtype, np.number) or not np.all(np.isfinite(rows)):
        raise DatasetError(path, "array has non-finite or non-numeric values")
    return rows.astype(np.float64)


def _opengl_c2w(path: Path, poses: np.ndarray) -> np.ndarray:
    """LLFF [N,3,4] poses -> OpenGL [N,4,4] camera-to-world.

    LLFF's rotation columns are the camera's (down, right, back) axes in world coordinates. OpenGL wants
    (right, up, back) = (column 1, -column 0, column 2); the translation column is the camera centre either way.
    Swapping two columns and negating one keeps the determinant, so a proper rotation stays proper.
    """
    down, right, back, centre = (poses[:, :, k] for k in range(4))
    c2w = np.zeros((len(poses), 4, 4))
    c2w[:, :3, 0] = right
    c2w[:, :3, 1] = -down
    c2w[:, :3, 2] = back
    c2w[:, :3, 3] = centre
    c2w[:, 3, 3] = 1.0
    for k in range(len(poses)):
        problem = rotation_problem(c2w[k, :3, :3])
        if problem:
            raise DatasetError(path, f"row {k}: {problem}")
    return c2w
