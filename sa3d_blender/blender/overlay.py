"""Draw the click prompt over the 3D view: the clicks as dots and SAM's current mask as a tinted layer on the camera frame.

GPU objects are created lazily inside the draw callback (every gpu call raises in background mode, where nothing is
drawn at all) and the mask texture is rebuilt only when the mask changes.
"""

from __future__ import annotations

import bpy
import gpu
import numpy as np
from gpu_extras.batch import batch_for_shader

from .click_mapping import pixel_to_region
from .viewport import camera_frame_in_region, image_size

MASK_RGBA = (0.15, 0.55, 1.0, 0.45)
POSITIVE_RGBA = (0.2, 0.9, 0.2, 1.0)
NEGATIVE_RGBA = (0.95, 0.2, 0.2, 1.0)
POINT_SIZE = 9.0
MAX_TEXTURE_SIDE = 1024


class _State:
    handle = None
    camera_name: str | None = None
    points: list = []
    labels: list = []
    mask: np.ndarray | None = None  # bool [H,W]
    texture = None  # GPUTexture of `mask`, None until drawn


_state = _State()


def show(camera_name: str) -> None:
    """Start drawing the prompt of one dataset camera (no clicks, no mask yet)."""
    _state.camera_name, _state.points, _state.labels = camera_name, [], []
    set_mask(None)
    if _state.handle is None and not bpy.app.background:
        _state.handle = bpy.types.SpaceView3D.draw_handler_add(_draw, (), "WINDOW", "POST_PIXEL")


def set_clicks(points: list, labels: list) -> None:
    _state.points, _state.labels = list(points), list(labels)


def set_mask(mask: np.ndarray | None) -> None:
    """SAM's current mask, bool [H,W] in image pixels; None hides it."""
    _state.mask, _state.texture = mask, None


def hide() -> None:
    if _state.handle is not None:
        bpy.types.SpaceView3D.draw_handler_remove(_state.handle, "WINDOW")
    _state.handle, _state.texture, _state.mask, _state.camera_name = None, None, None, None
    _state.points, _state.labels = [], []


def is_shown() -> bool:
    return _state.handle is not None


def shown() -> tuple[str | None, np.ndarray | None]:
    """The camera and the mask being drawn (also kept in background mode, where nothing is drawn)."""
    return _state.camera_name, _state.mask


def _draw() -> None:
    context = bpy.context
    camera = context.scene.objects.get(_state.camera_name or "")
    rv3d = context.region_data
    if camera is None or rv3d is None:
        return
    corners = camera_frame_in_region(context.scene, camera, context.region, rv3d)
    if corners is None:
        return
    width, height = image_size(camera)
    gpu.state.blend_set("ALPHA")
    if _state.mask is not None:
        if _state.texture is None:
            _state.texture = _mask_texture(_state.mask)
        shader = gpu.shader.from_builtin("IMAGE")
        # texture rows start at the image bottom, so the top-left corner samples v = 1
        batch = batch_for_shader(shader, "TRI_FAN", {"pos": corners.tolist(), "texCoord": ((0, 1), (1, 1), (1, 0), (0, 0))})
        shader.bind()
        shader.uniform_sampler("image", _state.texture)
        batch.draw(shader)
    if _state.points:
        shader = gpu.shader.from_builtin("UNIFORM_COLOR")
        region_xy = pixel_to_region(corners, width, height, np.array(_state.points))
        gpu.state.point_size_set(POINT_SIZE)
        for label, color in ((1, POSITIVE_RGBA), (0, NEGATIVE_RGBA)):
            chosen = [tuple(xy) for xy, lab in zip(region_xy, _state.labels) if lab == label]
            if chosen:
                batch = batch_for_shader(shader, "POINTS", {"pos": chosen})
                shader.uniform_float("color", color)
                batch.draw(shader)
        gpu.state.point_size_set(1.0)
    gpu.state.blend_set("NONE")


def mask_texture_pixels(mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The tint layer of `mask` as flat float32 RGBA rows, bottom row first (GPU texture order), and its (width,
    height). Subsampled to at most MAX_TEXTURE_SIDE texels a side: the camera frame covers part of a viewport, so a
    12-MP mask would cost 190 MB of texture for no visible detail."""
    step = max(1, -(-max(mask.shape) // MAX_TEXTURE_SIDE))
    shown = mask[::-step, ::step]
    rgba = np.zeros(shown.shape + (4,), dtype=np.float32)
    rgba[shown] = MASK_RGBA
    return rgba.ravel(), (shown.shape[1], shown.shape[0])


def _mask_texture(mask: np.ndarray):
    data, size = mask_texture_pixels(mask)
    # a Buffer made from an ndarray wraps its memory (buffer protocol): no per-texel Python objects
    return gpu.types.GPUTexture(size, format="RGBA16F", data=gpu.types.Buffer("FLOAT", data.shape, data))
