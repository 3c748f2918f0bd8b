"""Cross-view self-prompting: choose SAM point prompts for a view from the mask rendered there by the current 3-D mask.

Like SA3D, points are confident (high rendered score), spread out (an exclusion square sized from the soft mask area)
and close to the prompts already chosen. Unlike the reference, closeness is measured in real 3-D (depth back-projected
through the camera) rather than in (row, col, normalised depth), and all points are chosen before the single SAM call
(as SA3D-GS does), so a view costs one decoder pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass
class PromptSettings:
    max_points: int = 3  # positive points per view (the reference's N_p)
    confidence: float = 0.5  # a positive point needs a rendered score >= confidence * the view's best score
    distance_scale: float = 2.0  # a candidate loses the best score once it is this many object radii from every prompt
    negative_points: int = 0  # background clicks placed where the render is confidently "not this object" near it
    min_opacity: float = 0.5  # pixels the field renders as less opaque have no trustworthy depth: never prompts
    box: bool = True  # also prompt with the rendered mask's bounding box (the reference prompts with points only)
    box_margin: float = 0.1  # the box is widened by this fraction of its size on each side


@dataclass
class Prompts:
    points: np.ndarray  # float [N,2] pixel xy (pixel centres at +0.5)
    labels: np.ndarray  # int [N] 1 = object, 0 = background


def exclusion_half_size(score: np.ndarray) -> int:
    """The reference's spread rule: half-size of the square around each prompt, from the soft area Σ clip(M/max,0,1)."""
    top = float(score.max())
    area = float(np.clip(score / top, 0.0, 1.0).sum()) if top > 0 else 0.0
    return max(int(np.sqrt(area / np.pi)) // 2, 2)


def choose_prompts(score: np.ndarray, world_points: np.ndarray, opacity: np.ndarray,
                   settings: PromptSettings = PromptSettings()) -> Prompts | None:
    """Prompts for one view, or None when the rendered mask has no positive pixel there ("no prompt available").

    score: rendered mask [H,W]; world_points: [H,W,3] 3-D point seen by each pixel (ray origin + depth·direction);
    opacity: [H,W] rendered opacity.
    """
    h, w = score.shape
    usable = np.where(opacity >= settings.min_opacity, score, -np.inf)
    first = int(np.argmax(usable))
    top = float(usable.flat[first])
    if not top > 0:
        return None
    confident = usable >= settings.confidence * top
    flat_points = world_points.reshape(-1, 3)
    # object radius: how far the confident region around the best pixel reaches in world units (only its own
    # connected region: a spurious confident blob elsewhere must not inflate the radius and so switch off the penalty)
    regions, _ = ndimage.label(confident)
    own = (regions == regions.flat[first]).ravel()
    radius = float(np.linalg.norm(flat_points[own] - flat_points[first], axis=1).max())
    radius = max(radius, 1e-6)
    half = exclusion_half_size(score)

    chosen = [first]
    best_against_prompts = np.full(h * w, -np.inf)
    available = confident.copy()
    while len(chosen) < settings.max_points:
        last = chosen[-1]
        r, c = divmod(last, w)
        available[max(r - half, 0):r + half + 1, max(c - half, 0):c + half + 1] = False
        distance = np.linalg.norm(flat_points - flat_points[last], axis=1)
        # each pixel is scored against its closest prompt (running max), as in the reference
        candidate = usable.ravel() - top * distance / (settings.distance_scale * radius)
        best_against_prompts = np.maximum(best_against_prompts, candidate)
        ranked = np.where(available.ravel(), best_against_prompts, -np.inf)
        nxt = int(np.argmax(ranked))
        if not ranked[nxt] > 0:
            break
        chosen.append(nxt)

    negatives = _negative_points(usable, confident, top, settings.negative_points, half)
    indices = np.array(chosen + negatives, dtype=np.int64)
    rows, cols = np.divmod(indices, w)
    points = np.stack([cols + 0.5, rows + 0.5], axis=1).astype(np.float64)
    labels = np.array([1] * len(chosen) + [0] * len(negatives), dtype=np.int64)
    return Prompts(points, labels)


def _negative_points(usable: np.ndarray, confident: np.ndarray, top: float, count: int, half: int) -> list[int]:
    """Pixels in a ring around the object whose rendered score is most negative (voted "not this object")."""
    if count <= 0:
        return []
    near = ndimage.binary_dilation(confident, iterations=4 * half) & ~ndimage.binary_dilation(confident, iterations=half)
    candidates = np.where(near & np.isfinite(usable) & (usable < -0.1 * top), usable, np.inf)
    picked: list[int] = []
    w = usable.shape[1]
    for _ in range(count):
        k = int(np.argmin(candidates))
        if not np.isfinite(candidates.flat[k]):
            break
        picked.append(k)
        r, c = divmod(k, w)
        candidates[max(r - 2 * half, 0):r + 2 * half + 1, max(c - 2 * half, 0):c + 2 * half + 1] = np.inf
    return picked


def prompt_box(rendered: np.ndarray, margin: float) -> np.ndarray | None:
    """SAM's box prompt [x0, y0, x1, y1] (pixel edges) around the rendered mask, widened by `margin` of its size on
    each side; blobs under a tenth of the largest one's area are left out (a stray pixel far away must not make the
    box cover the image). None when the mask is empty."""
    regions, count = ndimage.label(rendered)
    if count == 0:
        return None
    areas = np.bincount(regions.ravel())[1:]
    kept = np.isin(regions, 1 + np.flatnonzero(areas >= 0.1 * areas.max()))
    rows, cols = np.flatnonzero(kept.any(axis=1)), np.flatnonzero(kept.any(axis=0))
    h, w = rendered.shape
    pad_x, pad_y = margin * (cols[-1] + 1 - cols[0]), margin * (rows[-1] + 1 - rows[0])
    return np.array([max(cols[0] - pad_x, 0.0), max(rows[0] - pad_y, 0.0),
                     min(cols[-1] + 1 + pad_x, w), min(rows[-1] + 1 + pad_y, h)], dtype=np.float64)


def pieces_near(mask: np.ndarray, reference: np.ndarray, reach: int) -> np.ndarray:
    """`mask` (bool [H,W]) without its connected pieces that come no closer than `reach` pixels to `reference`."""
    pieces, count = ndimage.label(mask)
    if count <= 1:
        return mask
    near = ndimage.binary_dilation(reference, iterations=reach) if reach > 0 else reference
    touching = np.unique(pieces[near & mask])
    return np.isin(pieces, touching[touching > 0])


def binarise_rendered(score: np.ndarray) -> np.ndarray:
    """The reference's binarisation for the IoU gate: M > mean(M) and M > 0."""
    return (score > score.mean()) & (score > 0)

