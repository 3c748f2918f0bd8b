"""Reading the files a dataset points to: JSON with positioned errors, image sizes from headers, image pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DatasetError

# Suffixes tried when a frame's file_path has none (original NeRF synthetic writes "./train/r_0")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")


def read_json(path: Path) -> dict:
    """The top-level object of a JSON file; DatasetError with the line and column of a syntax error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(path, f"cannot read file: {error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise DatasetError(path, f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}") from None
    if not isinstance(data, dict):
        raise DatasetError(path, f"expected a JSON object at the top level, found {type(data).__name__}")
    return data


def resolve_image(path: Path) -> Path | None:
    """The image file at `path`, or at `path` plus a usual image suffix; None when there is none."""
    if path.is_file():
        return path
    for suffix in IMAGE_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header, without decoding the pixels."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError) as error:
        raise DatasetError(path, f"not a readable image: {error}") from None


def read_rgb(path: Path, background: np.ndarray) -> np.ndarray:
    """float32 [H,W,3] in [0,1]; transparent pixels are composited over `background` (RGB in [0,1])."""
    try:
        with Image.open(path) as image:
            has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            pixels = np.asarray(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError) as error:
        raise DatasetError(path, f"not a readable image: {error}") from None
    if not has_alpha:
        return pixels
    alpha = pixels[..., 3:]
    return pixels[..., :3] * alpha + np.asarray(background, dtype=np.float32) * (1.0 - alpha)


def resize_image(image: np.ndarray, size: tuple[int, int], smooth: bool = False) -> np.ndarray:
    """float32 [H,W] or [H,W,C] resized to (width, height): by area average (box filter, for shrinking photos), or
    with `smooth` bilinearly (for enlarging rendered masks)."""
    method = Image.Resampling.BILINEAR if smooth else Image.Resampling.BOX
    size = (int(size[0]), int(size[1]))
    planes = image[..., None] if image.ndim == 2 else image
    channels = [Image.fromarray(np.ascontiguousarray(planes[..., c], dtype=np.float32), mode="F").resize(size, method)
                for c in range(planes.shape[-1])]
    out = np.stack([np.asarray(c, dtype=np.float32) for c in channels], axis=-1)
    return out[..., 0] if image.ndim == 2 else out
