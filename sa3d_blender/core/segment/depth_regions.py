"""Which part of a 2-D mask lies on the surface the user clicked: the field's depth tells objects apart that SAM,
seeing colours, sometimes joins (a cone standing behind a ball of the same brightness)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# neighbouring pixels lie on different surfaces when their first-surface depths differ by more than this fraction of
# the nearer one. Demo (160 px, 7-mm voxels): within an object neighbours differ by a few percent; the cone behind
# the ball lies 20-30 % farther
DEPTH_JUMP = 0.1


def clicked_surface(mask: np.ndarray, surface: np.ndarray, clicks: np.ndarray) -> np.ndarray:
    """bool [H,W]: the part of `mask` (bool [H,W]) that the clicked pixels (`clicks` [N,2] as (x, y) in its pixels)
    reach without crossing a depth jump (DEPTH_JUMP) in `surface` (float [H,W], the first-surface distance, inf
    where no surface is), with the edge pixels along its outline; empty when no click lands on the mask."""
    depth = np.where(np.isfinite(surface), surface, np.float32(1e30))
    edge = np.zeros(mask.shape, dtype=bool)
    for axis in (0, 1):
        a, b = _pairs(depth, axis)
        jump = np.abs(b - a) > DEPTH_JUMP * np.minimum(a, b)
        # the farther pixel of each jump is the edge: the nearer surface keeps its outline
        far_a, far_b = _pairs(edge, axis)
        far_a |= jump & (a > b)
        far_b |= jump & (b >= a)
    regions, _ = ndimage.label(mask & ~edge)
    h, w = mask.shape
    cols = np.clip(np.asarray(clicks)[:, 0].astype(np.int64), 0, w - 1)
    rows = np.clip(np.asarray(clicks)[:, 1].astype(np.int64), 0, h - 1)
    seeds = np.zeros(mask.shape, dtype=bool)
    seeds[rows, cols] = True
    # a click on an edge pixel starts from the regions beside it
    touched = np.unique(regions[ndimage.binary_dilation(seeds) & (regions > 0)])
    return ndimage.binary_dilation(np.isin(regions, touched)) & mask


def _pairs(values: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Views of each pixel and its next neighbour along `axis` (writable where `values` is)."""
    if axis == 0:
        return values[:-1], values[1:]
    return values[:, :-1], values[:, 1:]
