"""SA3D on a trained field: from the user's clicks on one view to a 3-D mask, by inverse rendering and self-prompting.

Decisions (measured on the generated scenes, see the report in the tests):
- views after the first are visited nearest-first (greedy by camera centre and viewing direction), so each view is
  prompted from a grid built from similar viewpoints; the reference goes in dataset order (measured the same on the
  tiny scene, 0.911 vs 0.910: the closed-form average makes order matter only through the IoU gate);
- SAM returns its 3 masks and the one that best matches the rendered mask is kept (the gate compares the same pair);
- views rejected by the IoU gate are tried once more at the end, with the grid all the accepted views built;
- each view is prompted with the confident points and the rendered mask's box (the reference: points only; look-alike
  preset, mean test IoU 0.851 -> 0.868, the 3rd bunny 0.65 -> 0.72); a view SAM still disagrees with is prompted
  with the box alone, and on its last chance votes with the rendered 3-D mask (`ObjectResult.view_status` says which);
- no negative self-prompts: one background click per view measured slightly worse (IoU 0.908 vs 0.911), and negative
  clicks on the other segmented objects beside this one made no difference on the look-alikes (0.896 vs 0.898);
- a click on empty space (SAM mask empty, or the field renders < `min_opacity` on average inside it) is a PromptError,
  and so is an object no other view confirms: a 1-view mask is a smear along the rays, not an object.
"""

from __future__ import annotations

import logging
import time
import zipfile
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from scipy import ndimage

from ..atomic_files import atomic_write
from ..data.dataset_files import resize_image
from ..data.datasets import Dataset
from ..errors import InputFileError, PromptError
from ..field.voxel_field import VoxelField
from ..mesh.texture import Photo
from ..metrics import mask_iou
from .depth_regions import clicked_surface
from .mask_grid import MaskGrid
from .segmenters import Segmenter, SegmenterResult
from .self_prompting import PromptSettings, binarise_rendered, choose_prompts, pieces_near, prompt_box
from .view_cache import ViewCache, ViewData

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
VIEW_ORDERS = ("nearest", "dataset")
VIEW_STATUSES = ("clicked", "used", "reprompted", "fallback", "skipped")
MASK_LEVEL = 0.5  # render_mask threshold: the object holds more than half of the pixel's opacity
# rendered_mask fills a hole of the mask where its pixels give the object more than this share of the light they stop
# (median): a reflection in a shiny surface (room tray 0.88-0.97), not a real hole (thin ring 0.5-0.65). Room field,
# tray test IoU: no filling 0.876, this 0.880; 0.7 the same; every hole pixel with a share > 0.5 0.888 but the ring
# 0.750 -> 0.714, with a share > 0.8 0.884 (the ring's rendered mask 0.724 -> 0.719)
REFLECTION_SHARE = 0.8
# ... counting a pixel's stopped light as at least this much: where a hole shows an empty sky (the field's background
# colour, no opacity), the little light the pixel stops may all be the object's fuzzy rim, and the hole is still real.
# The tray's reflections stop 0.27-0.5; room field, tray 0.880 with this floor at 0.2 or 0.25 as without it
REFLECTION_MIN_OPACITY = 0.2
# Pixels per view SA3D renders and inverse-renders masks at. A view's frozen weights cost ~8 B x 60-130 entries per
# pixel, so this sets SA3D's memory and caching time; the grid holds at most ~200 voxels across, so more pixels add
# no 3-D detail (flower at 577x433: ~260 MB per view, at this budget ~65 MB). SAM still sees the working-size photo.
SA3D_PIXEL_BUDGET = 65_536
REFINE_IOU = 0.8  # view_mask: SAM's outline replaces the rendered mask's when they agree this well
REFINE_BOX_MARGIN = 0.1
# view_mask leaves smaller rendered masks as they are: SAM's outline of a ~20x20 px object is coarser than the render's
# (room preset, the 15-px ball in the tray: 0.914 -> 0.877 when outlined, 0.918 with this floor; lookalike unchanged,
# thin 0.937 -> 0.932 where the ring's far views fall under it)
MIN_REFINE_PIXELS = 400
# first_mask passes over a SAM mask with more than this fraction beyond a depth jump from the clicks, for one that
# keeps CLICKED_KEPT of the part they reach. Demo: SAM's single mask for 3 clicks on the ball held the cone standing
# behind it (12 % of the mask), and the 3-D mask of the ball alone became ball and cone (test IoU 0.52); the masks
# chosen for every preset object hold at most 0.6 %, fern's plant 29 % (its fronds overlap: every candidate does)
OFF_SURFACE = 0.05
CLICKED_KEPT = 0.9
# SAM's single-mask output for several clicks is, for most objects, one of its 3 candidates (IoU >= 0.95 with one for
# 21 of 25 objects of demo seeds 1-2, room seeds 0-1 and the look-alikes; eval's clicks); on a ball patched black and
# white it was two white patches (IoU 0.87 / 0.80 at most with a candidate, 0.35 / 0.73 with the truth) and the
# ball's 3-D mask a single hexagon (test IoU 0.107). Such a single mask gives way to SAM's best-scored candidate when
# that holds HELD_INSIDE of it: the whole ball (0.984 / 0.990 with the truth). Left alone, closest to the line: room
# seed 1's tray and a bunny leaning on another (0.91); the bunny's candidate holding it is both bunnies, scored below
# the best, which is why only the best-scored candidate may replace the single mask
SINGLE_AGREES = 0.9
HELD_INSIDE = 0.95
# SAM's masks lose their pieces farther than this many pixels from the rendered mask they are compared with, in the
# self-prompted views and in view_mask: on fern, MobileSAM's outline of the plant carried 34-84 specks on the pillar,
# ceiling, planter and floor behind it, and the votes of such specks left 1.75 % of the 3-D mask's matter in pieces
# apart from the plant (1.28 % with the propagation's masks cut too)
OUTLINE_REACH = 3
# μ of MaskGrid. At 1 (the reference's weight), objects in contact lose the parts where they touch to each other's SAM
# masks (look-alike preset: 3rd bunny 0.72 mean test IoU); 0.25 and 0 both give 0.88 there (scene mean 0.900), and
# a small μ still takes a leaking mask's voxels from the neighbour
OTHER_OBJECT_PENALTY = 0.25


@dataclass
class SA3DSettings:
    # λ for the user's view. The reference uses 5; with the closed-form average the first view is just one vote among
    # many, and 1 kept more of the object at its silhouette (tiny scene, mean test IoU 0.921 vs 0.911 with 5)
    first_view_negative: float = 1.0
    # λ for self-prompted views (reference: 1). 0.5 gained only where the other-object penalty was too strong (look-
    # alike bunnies) and lost on thin objects (thin preset: ring 0.867 -> 0.835 mean test IoU)
    negative: float = 1.0
    iou_threshold: float = 0.5  # τ: skip a view whose SAM mask and rendered mask agree less
    prompts: PromptSettings = dc_field(default_factory=PromptSettings)
    view_order: str = "nearest"  # "nearest" or "dataset"
    retry_skipped: bool = True  # second chance for gated views once every other view has voted
    min_opacity: float = 0.5  # mean rendered opacity a first-view SAM mask needs to be "something"
    # a gated view is prompted once more with the box alone (points from a blurred render can sit on a neighbour)
    reprompt: bool = True
    # on its last chance, a view SAM still disagrees with votes with the rendered 3-D mask where the object is what
    # the view sees (instead of being skipped): a chain of confusing views cannot leave the object without support
    fallback: bool = True

    def __post_init__(self) -> None:
        if self.view_order not in VIEW_ORDERS:
            raise ValueError(f"view_order must be one of {VIEW_ORDERS}, got {self.view_order!r}")


@dataclass
class ObjectResult:
    name: str
    grid: np.ndarray  # float32 [X,Y,Z] mask grid V; the 3-D mask is grid > 0
    first_view: str
    used_views: list[str]  # views whose SAM mask was inverse-rendered, in order (first view first)
    skipped_views: dict[str, str]  # view -> reason
    view_ious: dict[str, float]  # IoU(SAM mask, rendered mask) of every prompted view
    seconds: float
    # what each view contributed: "used" (SAM's mask from the self-prompts), "reprompted" (SAM's mask from the box
    # alone), "fallback" (the rendered 3-D mask), "skipped"; the first view is "clicked"
    view_status: dict[str, str] = dc_field(default_factory=dict)
    # view index -> the mask (bool, working resolution) each view added: SAM's outline of the object, which the
    # mesh's visual hull is cut by (visual_hull.py); a byte per pixel and view, kept for the session
    view_masks: dict[int, np.ndarray] = dc_field(default_factory=dict)

    def status_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(VIEW_STATUSES, 0)
        for status in self.view_status.values():
            counts[status] += 1
        return counts


class SceneSegmenter:
    """SA3D for one field + dataset + SAM model; holds the view cache and one mask channel per segmented object."""

    def __init__(self, field: VoxelField, dataset: Dataset, segmenter: Segmenter, views=None,
                 cache_folder: str | Path | None = None, other_object_penalty: float = OTHER_OBJECT_PENALTY,
                 pixel_budget: int = SA3D_PIXEL_BUDGET):
        """`views` are the camera indices SA3D propagates over (default: the dataset's training views).

        Three resolutions: prompts are given in the pixels of the image files (`full_cameras`), SAM segments the
        dataset's working-size images (`image_cameras`, candidates come back at that size), and masks are rendered and
        inverse-rendered in `cameras`, the working size reduced to `pixel_budget` pixels per view."""
        self.field = field
        self.dataset = dataset
        self.image_cameras = dataset.cameras
        pixels = dataset.cameras.width * dataset.cameras.height
        self.cameras = dataset.cameras.scaled(np.minimum(1.0, np.sqrt(pixel_budget / pixels)))
        self.full_cameras = dataset.full_cameras or dataset.cameras
        self.segmenter = segmenter
        self.views = [int(i) for i in (dataset.train if views is None else views)]
        self.cache = ViewCache(field, self.cameras, segmenter, self._image, cache_folder)
        self.mask_grid = MaskGrid(field.shape, other_object_penalty)
        self.results: dict[str, ObjectResult] = {}

    # --- views ----------------------------------------------------------------------------------------------------
    def _image(self, i: int) -> np.ndarray | None:
        path = self.cameras.image_paths[i]
        return self.dataset.load_image(i) if path is not None and path.is_file() else None

    def photos(self) -> Iterator[Photo]:
        """The propagation views as photos to texture and fill meshes from: the working-size image, and the field's
        expected depth and first surface from the cached rendering weights (for visibility)."""
        for i in self.views:
            image = self._image(i)
            if image is not None:
                weights = self.cache.weights(i)
                yield Photo(i, image, self.image_cameras, weights.depth, self.cameras, weights.surface)

    def view_index(self, view: str | int) -> int:
        if isinstance(view, (int, np.integer)):
            if not 0 <= view < len(self.cameras):
                raise PromptError(f"view index {view} is out of range: the dataset has {len(self.cameras)} views")
            return int(view)
        return self.cameras.index(str(view))

    def prepare(self, progress: Progress | None = None) -> None:
        """Compute (or load) every propagation view's SAM embedding and rendering weights."""
        self.cache.prepare(self.views, progress)

    # --- segmentation ---------------------------------------------------------------------------------------------
    def candidates(self, view: str | int, points, labels, box=None, multimask: bool = True) -> SegmenterResult:
        """SAM's 3 candidate masks (at the working resolution) for the user's prompt on `view`, given in the image
        file's pixels (PromptError for clicks outside the image); with multimask False, SAM's single mask."""
        i = self.view_index(view)
        data = self.cache.get(i)
        scale = self.file_scale(i, self.image_cameras)
        points = None if points is None else _array(points) * scale
        box = None if box is None else _array(box) * np.tile(scale, 2)
        return self.segmenter.predict(data.embedding, points, _array(labels), box, multimask=multimask)

    def first_mask(self, view: str | int, points, labels, box=None, mask_choice: int | None = None) -> np.ndarray:
        """The SAM mask (working size) that segment() starts from: candidate `mask_choice` of SAM's 3 when given; else
        the first of SAM's preferred masks that holds every positive click and no negative one, passed over for a
        later one without what lies beyond a depth jump from the clicks (_without_other_surfaces). SAM's preference: its
        single-mask output for two or more prompts (the best-scored of 3 can be a part: the room's can from 3 side
        clicks lost its top, IoU 0.85 vs 0.99) or, where that output is none of its candidates, its best-scored
        candidate when that holds it (_whole_of), then its candidates by predicted IoU."""
        i = self.view_index(view)
        result = self.candidates(i, points, labels, box, multimask=True)
        if mask_choice is not None:
            if not 0 <= int(mask_choice) < len(result.masks):
                raise PromptError(f"mask_choice {mask_choice} does not exist: SAM gave {len(result.masks)} masks "
                                  f"(0..{len(result.masks) - 1})")
            return result.masks[int(mask_choice)]
        preferred = [result.masks[k] for k in np.argsort(-result.scores, kind="stable")]
        if (0 if points is None else len(_array(points))) + (box is not None) >= 2:
            single = self.candidates(i, points, labels, box, multimask=False).masks[0]
            preferred.insert(0, _whole_of(single, preferred))
        honoured = [m for m in preferred if self._honours_clicks(i, m, points, labels)] or preferred[:1]
        return self._without_other_surfaces(i, honoured, points, labels)

    def _without_other_surfaces(self, i: int, masks: list[np.ndarray], points, labels) -> np.ndarray:
        """The first of `masks`, unless more than OFF_SURFACE of it lies beyond a depth jump from the positive clicks
        (depth_regions.py) and a later one keeps the part the clicks reach (CLICKED_KEPT of it) without reaching
        beyond one itself: SAM joins objects of similar colour, the field's depth does not. A mask whose every
        candidate reaches beyond jumps (a plant's fronds in front of each other) stays as SAM prefers it."""
        positive = None if points is None else _array(points)[_array(labels) > 0]
        if positive is None or not len(positive):
            return masks[0]
        data = self.cache.get(i)
        clicks = positive * self.file_scale(i)

        def parts(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            at_view = self._to_view(mask, data)
            return at_view, clicked_surface(at_view, data.weights.surface, clicks)

        first, reached = parts(masks[0])
        if reached.sum() >= (1.0 - OFF_SURFACE) * first.sum():
            return masks[0]
        for mask in masks[1:]:
            at_view, on_surface = parts(mask)
            if (on_surface.sum() >= (1.0 - OFF_SURFACE) * at_view.sum()
                    and (at_view & reached).sum() >= CLICKED_KEPT * reached.sum()):
                return mask
        return masks[0]

    def _honours_clicks(self, i: int, mask: np.ndarray, points, labels) -> bool:
        if points is None:
            return True
        xy = _array(points) * self.file_scale(i, self.image_cameras)
        cols = np.clip(xy[:, 0].astype(int), 0, mask.shape[1] - 1)
        rows = np.clip(xy[:, 1].astype(int), 0, mask.shape[0] - 1)
        return bool(np.all(mask[rows, cols] == (_array(labels) > 0)))

    def file_scale(self, i: int, cameras=None) -> np.ndarray:
        """(x, y) factors from the image file's pixels to those of `cameras` (default: SA3D's)."""
        cameras = self.cameras if cameras is None else cameras
        return np.array([cameras.width[i] / self.full_cameras.width[i], cameras.height[i] / self.full_cameras.height[i]])

    def _to_view(self, mask: np.ndarray, data: ViewData) -> np.ndarray:
        """A SAM mask (working size) at the size SA3D renders view `data` at."""
        h, w = data.weights.shape
        if mask.shape == (h, w):
            return mask
        return resize_image(mask.astype(np.float32), (w, h), smooth=True) > 0.5

    def segment(self, name: str, view: str | int, points, labels, box=None, mask_choice: int | None = None,
                settings: SA3DSettings = SA3DSettings(), progress: Progress | None = None) -> ObjectResult:
        """Segment object `name` from the prompt on `view`; replaces an earlier object of that name only on success."""
        start = time.perf_counter()
        first = self.cache.get(self.view_index(view))
        first_mask = self._to_view(self.first_mask(first.index, points, labels, box, mask_choice), first)
        self._check_first_mask(first, first_mask, settings.min_opacity)

        previous = self.mask_grid.votes(name)
        self.mask_grid.reset(name)
        try:
            outcome = self._propagate(name, first, first_mask, settings, progress)
        except BaseException:
            self.mask_grid.put_votes(name, previous)
            raise
        used, skipped, ious, status, view_masks = outcome
        grid = self.mask_grid.grid(name)
        if len(used) < 2 or not (grid > 0).any():
            self.mask_grid.put_votes(name, previous)
            reasons = "; ".join(f"{v}: {r}" for v, r in list(skipped.items())[:4])
            raise PromptError(
                f"object '{name}': no other view confirmed the mask drawn on view {first.name} "
                f"({len(skipped)} views skipped{', e.g. ' + reasons if reasons else ''}). A mask seen from one view only "
                "cannot be placed in 3-D: click the object where it is large and unoccluded, or add clicks")
        outcome = ObjectResult(name, grid, first.name, used, skipped, ious, time.perf_counter() - start, status,
                               view_masks)
        self.results[name] = outcome
        log.info("object %s: %s, %.1f s", name, outcome.status_counts(), outcome.seconds)
        return outcome

    def _check_first_mask(self, first: ViewData, mask: np.ndarray, min_opacity: float) -> None:
        if not mask.any():
            raise PromptError(f"SAM found nothing at the click(s) on view {first.name}: the mask is empty")
        opacity = float(first.weights.opacity[mask].mean())
        if opacity < min_opacity:
            raise PromptError(
                f"the selection on view {first.name} covers empty space: the field renders it at {opacity:.0%} opacity "
                "on average; click on an object the reconstruction contains")

    def _propagate(self, name: str, first: ViewData, first_mask: np.ndarray, settings: SA3DSettings,
                   progress: Progress | None) -> tuple[list[str], dict[str, str], dict[str, float], dict[str, str],
                                                       dict[int, np.ndarray]]:
        self.mask_grid.add_view(name, first.weights, first_mask, settings.first_view_negative)
        used, skipped, ious, status = [first.name], {}, {}, {first.name: "clicked"}
        view_masks = {first.index: first_mask}
        order = [i for i in self.views if i != first.index]
        if settings.view_order == "nearest":
            order = nearest_first(self.cameras, first.index, order)
        queue = [(i, not settings.retry_skipped) for i in order]
        done = 0
        while queue:
            i, last_chance = queue.pop(0)
            data = self.cache.get(i)
            outcome, reason, iou, mask = self._prompt_view(name, data, settings, last_chance)
            if mask is not None:
                view_masks[i] = mask
            if iou is not None:
                ious[data.name] = iou
            status[data.name] = outcome
            if outcome in ("used", "reprompted"):
                used.append(data.name)
            if outcome == "skipped":
                skipped[data.name] = reason
                if not last_chance:
                    queue.append((i, True))
            else:
                skipped.pop(data.name, None)
            done += 1
            if progress is not None:
                progress(min(done / max(len(order), 1), 1.0), f"{name}: view {data.name} {reason or outcome}")
        return used, skipped, ious, status, view_masks

    def _prompt_view(self, name: str, data: ViewData, settings: SA3DSettings,
                     last_chance: bool = True) -> tuple[str, str, float | None, np.ndarray | None]:
        """Self-prompt SAM on one view and add what it agrees with to the grid: (status, reason, IoU with the render,
        the mask added).

        Prompts: the confident points and the rendered mask's box; SAM's pieces away from the render do not vote. A view
        SAM disagrees with is prompted with the box alone, then (on its last chance) votes with the rendered 3-D mask
        where the object is what the view sees."""
        values = self.mask_grid.values(name)
        score = data.weights.render(values)
        prompts = choose_prompts(score, self._world_points(data), data.weights.opacity, settings.prompts)
        if prompts is None:
            return "skipped", "no prompt available: the rendered mask has no positive pixel", None, None
        rendered = binarise_rendered(score)
        box = prompt_box(rendered, settings.prompts.box_margin)
        attempts = [("used", prompts.points, prompts.labels, box if settings.prompts.box else None)]
        if settings.reprompt and box is not None:
            attempts.append(("reprompted", None, None, box))
        best = 0.0
        for outcome, p, l, b in attempts:
            mask, iou = self._best_match(data, p, l, b, rendered)
            best = max(best, iou)
            if iou >= settings.iou_threshold:
                self.mask_grid.add_view(name, data.weights, mask, settings.negative)
                return outcome, "", iou, mask
        reason = f"SAM mask disagrees with the rendered mask (IoU {best:.2f} < {settings.iou_threshold:g})"
        if last_chance and settings.fallback:
            seen = data.weights.render((values > 0).astype(np.float32)) > MASK_LEVEL
            if seen.any():
                self.mask_grid.add_view(name, data.weights, seen, settings.negative)
                return "fallback", reason, best, seen
        return "skipped", reason, best, None

    def _best_match(self, data: ViewData, points: np.ndarray | None, labels: np.ndarray | None,
                    box: np.ndarray | None, rendered: np.ndarray, image_size: bool = False) -> tuple[np.ndarray, float]:
        """SAM's candidate that best matches `rendered` (prompts and mask at SA3D's view size), and that IoU: compared
        at SA3D's view size, or with `image_size` at the size SAM saw (the working image), keeping SAM's detail. The
        candidates are first cut to their pieces within OUTLINE_REACH pixels of `rendered` (pieces_near)."""
        h, w = rendered.shape
        image_h, image_w = data.embedding.original_size
        scale = np.array([image_w / w, image_h / h])
        result = self.segmenter.predict(data.embedding, None if points is None else points * scale, labels,
                                        None if box is None else box * np.tile(scale, 2), multimask=True)
        if image_size:
            masks = list(result.masks)
            if (h, w) != (image_h, image_w):
                rendered = resize_image(rendered.astype(np.float32), (image_w, image_h), smooth=True) > 0.5
        else:
            masks = [self._to_view(mask, data) for mask in result.masks]
        masks = [pieces_near(mask, rendered, OUTLINE_REACH) for mask in masks]
        ious = [mask_iou(mask, rendered) for mask in masks]
        k = int(np.argmax(ious))
        return masks[k], float(ious[k])

    def _world_points(self, data: ViewData) -> np.ndarray:
        origins, dirs = self.cameras.pixel_rays(data.index)
        return (origins + dirs * data.weights.depth.reshape(-1, 1)).reshape(*data.weights.shape, 3)

    # --- results --------------------------------------------------------------------------------------------------
    def object_grid(self, name: str, exclusive: bool = False) -> np.ndarray:
        """The object's 3-D mask as it stands now, float32 0/1 on the field's vertices [X,Y,Z]: what its mesh and mask
        files are made from. Unlike the result of segment(), it reflects the objects segmented since (an object
        nested inside this one is taken out of it)."""
        self._check_segmented(name)
        return self.mask_grid.masks(exclusive)[name].astype(np.float32)

    def _check_segmented(self, name: str) -> None:
        if name not in self.mask_grid.names:
            known = ", ".join(self.mask_grid.names) or "none yet"
            raise PromptError(f"no segmented object named '{name}' (segmented: {known})")

    def other_objects(self, name: str) -> np.ndarray:
        """bool [X,Y,Z]: what the other segmented objects hold, which `name`'s mesh must not take in
        (MaskGrid.others)."""
        return self.mask_grid.others(name)

    def silhouettes(self, name: str, photos: Iterable[Photo]) -> list[np.ndarray | None]:
        """The mask each of `photos` added to the object while it was segmented (None: the view added none), at
        their depth size: the outlines its mesh's visual hull is cut by (visual_hull.py)."""
        if name not in self.results:
            self._check_segmented(name)
        masks = self.results[name].view_masks
        return [masks.get(photo.index) for photo in photos]

    def visibility(self, name: str) -> np.ndarray:
        """float32 [X,Y,Z]: how much of each vertex the view that sees it best saw while the object was segmented
        (MaskGrid.visibility): what tells its mesh the matter no view sees well (interior.well_seen)."""
        self._check_segmented(name)
        return self.mask_grid.visibility(name)

    def render_mask(self, name: str, view: str | int, exclusive: bool = False, size: tuple[int, int] | None = None) -> np.ndarray:
        """Opacity [H,W] in [0,1] of object `name` alone (its 3-D mask V > 0, rendered with the frozen weights) in any
        camera of the dataset; a pixel shows the object where this is > MASK_LEVEL. At the working resolution, or
        interpolated to `size` = (width, height), e.g. the image file's.

        Rendering the binary 3-D mask rather than thresholding A·V at 0 drops the fringe pixels that only graze the
        object (on the tiny scene: mean test IoU 0.81 -> 0.90)."""
        inside = self.object_grid(name, exclusive).reshape(-1)
        opacity = self.cache.weights(self.view_index(view)).render(inside).astype(np.float32)
        if size is None or tuple(size) == opacity.shape[::-1]:
            return opacity
        return resize_image(opacity, size, smooth=True)

    def rendered_mask(self, name: str, view: str | int) -> np.ndarray:
        """bool [H,W] at SA3D's view size: where the object holds more than half of the pixel's opacity, and the holes
        this encloses where it holds most of what light the pixels stop. A shiny surface lets the field show its
        reflection through it: the room's metal tray is half transparent where the walls are mirrored in it, its own
        share of those pixels' light 0.9 (median; 0.75-0.93 at the 10th percentile) but only 0.3-0.5 of all their
        light, which left holes in its mask. A real hole shows what lies behind it: the thin preset's ring holds 0.5-0.65
        of its hole's stopped light (its fuzzy inner rim), and a ball lying in the tray is the ball's light; neither is
        filled (REFLECTION_SHARE).

        A container counts the light of the objects nested in it as its own, then leaves them their own masks and the
        pixels where they hold more than it does: it gave up their 3-D masks, fuzzy rims included, so along a nested
        object's outline neither held half the light. Room field, tray test IoU 0.880 -> 0.896 (most of what it
        missed lay within 2 pixels of the ball; 0.891 without the "more than it does"), the others unchanged;
        look-alikes in contact count as nested too: reduced lookalike test, bunny1 0.857 -> 0.853 (0.838 without)."""
        i = self.view_index(view)
        inner = [other for other in self.mask_grid.names if name in self.mask_grid.containers(other)]
        own = self.render_mask(name, i)
        if not inner:
            return object_pixels(own, self.cache.weights(i).opacity)
        nested = [self.render_mask(other, i) for other in inner]
        mask = object_pixels(np.minimum(own + sum(nested), 1.0), self.cache.weights(i).opacity)
        for other, light in zip(inner, nested):
            mask &= ~self.rendered_mask(other, i) & (own >= light)
        return mask

    def view_mask(self, name: str, view: str | int, size: tuple[int, int] | None = None, refine: bool = True) -> np.ndarray:
        """The object's mask (bool) in any camera of the dataset, at the working resolution or `size`: its 3-D mask
        rendered there (rendered_mask) and, with `refine`, outlined by SAM: SAM is prompted with the
        rendered mask's box and its deepest pixel, and its candidate that best matches the rendered mask replaces it
        when they agree (IoU >= REFINE_IOU). The 3-D mask decides which object it is, SAM where its edge runs: a
        rendered voxel mask is about one voxel too wide at the silhouette, where the object's edge voxels also hold
        some of what lies beside it; the outline's pieces away from the rendered mask are not its edge and go."""
        i = self.view_index(view)
        rendered = self.rendered_mask(name, i)
        if refine and rendered.sum() >= MIN_REFINE_PIXELS:
            depth = ndimage.distance_transform_edt(rendered)
            row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
            click = np.array([[col + 0.5, row + 0.5]])
            outline, iou = self._best_match(self.cache.get(i), click, np.ones(1, dtype=np.int64),
                                            prompt_box(rendered, REFINE_BOX_MARGIN), rendered, image_size=True)
            if iou >= REFINE_IOU:
                rendered = outline
        if size is None or tuple(size) == rendered.shape[::-1]:
            return rendered
        return resize_image(rendered.astype(np.float32), size, smooth=True) > 0.5


def object_pixels(object_opacity: np.ndarray, pixel_opacity: np.ndarray) -> np.ndarray:
    """bool [H,W]: the pixels where the object holds more than MASK_LEVEL of the light, and in the holes they enclose
    whose pixels (median) give the object more than REFLECTION_SHARE of the light they stop (at least
    REFLECTION_MIN_OPACITY), the pixels where it holds more than MASK_LEVEL of that light (see
    SceneSegmenter.rendered_mask)."""
    mask = object_opacity > MASK_LEVEL
    holes, count = ndimage.label(ndimage.binary_fill_holes(mask) & ~mask)
    if count == 0:
        return mask
    share = object_opacity / np.maximum(pixel_opacity, REFLECTION_MIN_OPACITY)
    reflection = np.zeros(count + 1, dtype=bool)
    reflection[1:] = np.asarray(ndimage.median(share, holes, np.arange(1, count + 1))) > REFLECTION_SHARE
    return mask | (reflection[holes] & (share > MASK_LEVEL))


def nearest_first(cameras, start: int, others: list[int]) -> list[int]:
    """Greedy order: next is the view closest (centre distance + viewing-direction difference) to any visited view."""
    centres = cameras.c2w[:, :3, 3]
    directions = -cameras.c2w[:, :3, 2]
    scale = float(np.median(np.linalg.norm(centres - centres.mean(0), axis=1))) or 1.0
    features = np.concatenate([centres, directions * scale], axis=1)
    remaining = list(others)
    best = np.linalg.norm(features[remaining] - features[start], axis=1)
    order = []
    while remaining:
        k = int(np.argmin(best))
        chosen = remaining.pop(k)
        best = np.delete(best, k)
        order.append(chosen)
        if remaining:
            best = np.minimum(best, np.linalg.norm(features[remaining] - features[chosen], axis=1))
    return order


def _array(value) -> np.ndarray | None:
    return None if value is None else np.asarray(value)


def _whole_of(single: np.ndarray, candidates: list[np.ndarray]) -> np.ndarray:
    """SAM's single mask, or where it agrees with none of `candidates` (best-scored first) and the best-scored one
    holds it, that one: the single output can be a few patches of a patterned object that no candidate is."""
    best = candidates[0]
    agrees = max(mask_iou(single, c) for c in candidates) >= SINGLE_AGREES
    return single if agrees or (best & single).sum() < HELD_INSIDE * single.sum() else best


def write_object_mask(path: str | Path, result: ObjectResult, field_id: str) -> Path:
    """Save an object's mask grid (and how it was made) as .npz, atomically; `field_id` ties it to its field."""
    path = Path(path)
    with atomic_write(path) as f:
        np.savez_compressed(f, grid=result.grid.astype(np.float32), name=np.array(result.name),
                            field_id=np.array(field_id), first_view=np.array(result.first_view),
                            used_views=np.array(result.used_views))
    return path


def read_object_mask(path: str | Path) -> tuple[str, np.ndarray, str]:
    """(name, grid float32 [X,Y,Z], field_id) from write_object_mask's file; InputFileError when it is not one."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return str(data["name"]), data["grid"].astype(np.float32), str(data["field_id"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise InputFileError(path, f"not an SA3D object mask file ({type(exc).__name__}: {exc})") from None
