"""Dataset cameras -> Blender: one "NeRF space" Empty with a Blender camera per view, matching the dataset's projection.

Intrinsics map onto a horizontally-fitted sensor (lens from fx), pixel aspect (fx != fy) and lens shift (principal point);
the camera's matrix relative to the Empty is the dataset's c2w (OpenGL axes = Blender camera axes), so moving or scaling
the Empty moves the whole capture. Blender has one render resolution per scene: each camera remembers its own
(custom properties) and `use_camera` applies it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from ..core.data.cameras import Cameras

log = logging.getLogger(__name__)

NERF_SPACE_NAME = "NeRF space"
NERF_SPACE_TAG = "sa3d_nerf_space"  # custom property marking the Empty (its value: the dataset path)
VIEW_TAG = "sa3d_view"  # custom property on each camera object: the dataset view name
SENSOR_WIDTH_MM = 36.0


def camera_settings(cameras: Cameras, i: int) -> dict:
    """Blender camera data + render values reproducing view i's pinhole projection.

    With sensor_fit HORIZONTAL Blender's view plane is W pixels wide and (aspect_y/aspect_x)*H tall in units where
    one horizontal pixel spans sensor_width/lens/W at unit depth, and lens shift moves it by shift*W of those units.
    Solving fx, fy, cx, cy for lens, pixel aspect and shift gives the values below.
    """
    fx, fy, cx, cy = (float(a[i]) for a in (cameras.fx, cameras.fy, cameras.cx, cameras.cy))
    width, height = int(cameras.width[i]), int(cameras.height[i])
    ycor = fx / fy  # aspect_y / aspect_x; Blender wants both aspects >= 1
    return {
        "lens": fx * SENSOR_WIDTH_MM / width,
        "shift_x": (width / 2.0 - cx) / width,
        "shift_y": (cy - height / 2.0) * ycor / width,
        "width": width,
        "height": height,
        "pixel_aspect_x": max(1.0, 1.0 / ycor),
        "pixel_aspect_y": max(1.0, ycor),
    }


def find_nerf_space(scene: bpy.types.Scene) -> bpy.types.Object | None:
    return next((obj for obj in scene.objects if NERF_SPACE_TAG in obj), None)


def dataset_cameras(scene: bpy.types.Scene) -> list[bpy.types.Object]:
    return [obj for obj in scene.objects if obj.type == "CAMERA" and VIEW_TAG in obj]


def camera_of_view(scene: bpy.types.Scene, view: str) -> bpy.types.Object | None:
    return next((obj for obj in dataset_cameras(scene) if obj[VIEW_TAG] == view), None)


def import_cameras(
    scene: bpy.types.Scene, cameras: Cameras, bbox: np.ndarray, source: str | Path, with_images: bool = True
) -> tuple[bpy.types.Object, list[bpy.types.Object]]:
    """Create (or refill) the NeRF-space Empty and one camera per view; returns (empty, cameras).

    An existing NeRF-space Empty keeps its transform and its meshes; only its old dataset cameras are replaced.
    """
    space = find_nerf_space(scene)
    if space is None:
        space = bpy.data.objects.new(NERF_SPACE_NAME, None)
        space.empty_display_type = "PLAIN_AXES"
        scene.collection.objects.link(space)
    for old in dataset_cameras(scene):
        remove_object(old)
    space[NERF_SPACE_TAG] = str(source)
    extent = float(np.linalg.norm(np.asarray(bbox)[1] - np.asarray(bbox)[0]))
    space.empty_display_size = 0.1 * extent
    created = []
    for i, name in enumerate(cameras.names):
        created.append(_new_camera(scene, space, cameras, i, name, extent, with_images))
    if created:
        scene.camera = created[0]
        use_camera(scene, created[0])
    log.info("imported %d cameras from %s", len(created), source)
    return space, created


def _new_camera(scene, space, cameras: Cameras, i: int, name: str, extent: float, with_images: bool):
    values = camera_settings(cameras, i)
    data = bpy.data.cameras.new(f"NeRF {name}")
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width = SENSOR_WIDTH_MM
    data.lens = values["lens"]
    data.shift_x, data.shift_y = values["shift_x"], values["shift_y"]
    data.clip_start, data.clip_end = 1e-3 * extent, 100.0 * extent
    data.display_size = 0.05 * extent
    path = cameras.image_paths[i]
    if with_images and path is not None and Path(path).is_file():
        background = data.background_images.new()
        background.image = bpy.data.images.load(str(path), check_existing=True)
        # the image covers exactly the camera frame, pixel aspect included
        background.frame_method = "STRETCH"
        data.show_background_images = True
    obj = bpy.data.objects.new(f"NeRF {name}", data)
    scene.collection.objects.link(obj)
    obj.parent = space
    obj.matrix_parent_inverse = Matrix.Identity(4)
    obj.matrix_basis = Matrix(cameras.c2w[i].tolist())
    obj[VIEW_TAG] = name
    for key in ("width", "height", "pixel_aspect_x", "pixel_aspect_y"):
        obj[f"sa3d_{key}"] = values[key]
    return obj


def use_camera(scene: bpy.types.Scene, camera: bpy.types.Object) -> None:
    """Make `camera` the scene camera with its own resolution and pixel aspect, so its frame matches its image."""
    scene.camera = camera
    render = scene.render
    render.resolution_x, render.resolution_y = int(camera["sa3d_width"]), int(camera["sa3d_height"])
    render.resolution_percentage = 100
    render.pixel_aspect_x, render.pixel_aspect_y = float(camera["sa3d_pixel_aspect_x"]), float(camera["sa3d_pixel_aspect_y"])


def remove_object(obj: bpy.types.Object) -> None:
    """Delete an object and its data block when nothing else uses it."""
    data = obj.data
    bpy.data.objects.remove(obj, do_unlink=True)
    if data is not None and data.users == 0:
        collection = {bpy.types.Camera: bpy.data.cameras, bpy.types.Mesh: bpy.data.meshes}.get(type(data))
        if collection is not None:
            collection.remove(data)
