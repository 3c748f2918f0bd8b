"""Writing images the CLI and the evaluation produce (PNG via Pillow, atomic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic_files import atomic_write


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] (or uint8 already) to uint8."""
    if image.dtype == np.uint8:
        return image
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an [H,W], [H,W,3] or [H,W,4] image (float in [0,1] or uint8) without leaving a partial file behind."""
    path = Path(path)
    with atomic_write(path) as f:
        Image.fromarray(to_uint8(np.asarray(image))).save(f, format="PNG")
    return path


def mask_overlay(image: np.ndarray, mask: np.ndarray, color=(1.0, 0.25, 0.1), outside: float = 0.35) -> np.ndarray:
    """The photo with the mask tinted in `color` and everything else darkened, float [H,W,3], for looking at by eye."""
    image = np.asarray(image, dtype=np.float32)
    tinted = 0.5 * image + 0.5 * np.asarray(color, dtype=np.float32)
    return np.where(np.asarray(mask, dtype=bool)[..., None], tinted, outside * image)
