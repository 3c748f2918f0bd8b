"""Score SA3D on a scene with ground truth: automatic clicks, test-view mask IoU / accuracy, two single-view SAM
baselines (the reference click's 3-D point projected into the test view; an oracle click at the deepest pixel of the
test view's ground-truth mask), how each propagation view was used, and the extracted mesh against the ground-truth mesh (F-score, precision, recall at 1 % and 0.5 % of the object's own
diagonal, Chamfer distance, normal consistency, connected parts).

Clicks and scores are in the pixels of the image files (the ground-truth masks' size), whatever the working resolution.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import Callable

import numpy as np
import trimesh
from scipy import ndimage

from .data.dataset_files import resize_image
from .data.image_io import write_png
from .errors import DatasetError, PromptError, SA3DError
from .mesh.mesh_extraction import ExtractionSettings, write_mesh
from .field.local_refinement import RefineSettings
from .mesh.object_export import extract_object, refine_object
from .mesh.rasterize import render_colours
from .mesh.texture import TexturedMesh, bake_texture
from .metrics import connected_parts, mask_accuracy, mask_iou, mesh_distances, psnr
from .segment.sa3d import ObjectResult, SA3DSettings, SceneSegmenter

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]


@dataclass
class EvalSettings:
    max_clicks: int = 3  # positive clicks on the reference view
    sa3d: SA3DSettings = dc_field(default_factory=SA3DSettings)
    extraction: ExtractionSettings = dc_field(default_factory=ExtractionSettings)
    # F-score distance thresholds as fractions of each object's ground-truth bounding-box diagonal: "fscore" (also
    # precision, recall) at the first, "fscore_fine" at the second
    fscore_fractions: tuple[float, float] = (0.01, 0.005)
    meshes: bool = True  # extract and score meshes (the slowest part after SAM)
    texture: bool = True  # bake each mesh's photo texture and score both colourings on the test views
    refine: RefineSettings | None = None  # mesh a finer field trained over each object's box (None: the scene field)


def reference_clicks(mask: np.ndarray, max_clicks: int = 3) -> np.ndarray:
    """Up to max_clicks pixel positions [N,2] (x, y) inside `mask`: the point deepest inside (distance transform),
    then points far from the chosen ones among the pixels at least half as deep, so they spread over the object."""
    depth = ndimage.distance_transform_edt(mask)
    if depth.max() <= 0:
        raise ValueError("the mask is empty: no click can be placed")
    interior = depth >= 0.5 * depth.max()
    rows, cols = np.nonzero(interior)
    first = np.unravel_index(int(np.argmax(depth)), depth.shape)
    chosen = [first]
    nearest = np.hypot(rows - first[0], cols - first[1])
    while len(chosen) < max_clicks and nearest.max() > 2.0:
        k = int(np.argmax(nearest))
        chosen.append((rows[k], cols[k]))
        nearest = np.minimum(nearest, np.hypot(rows - rows[k], cols - cols[k]))
    return np.array([[c + 0.5, r + 0.5] for r, c in chosen], dtype=np.float64)


def reference_view(segmenter: SceneSegmenter, name: str) -> int:
    """The propagation (training) view with a mask in which the object covers the most pixels."""
    gt = segmenter.dataset.ground_truth
    propagation = set(segmenter.views)
    masked = [i for i in gt.masked_views(name) if i in propagation]
    if not masked:
        raise DatasetError(gt.path, f"object '{name}' has no mask on a training view: the clicks are placed on one")
    areas = [np.count_nonzero(gt.object_mask(name, i)) for i in masked]
    if max(areas) == 0:
        raise DatasetError(gt.path, f"object '{name}' is empty in every masked training view: nowhere to click")
    return masked[int(np.argmax(areas))]


def scored_views(dataset, name: str, reference: int) -> tuple[list[int], str]:
    """The views an object is scored on and which they are: its masked held-out views ("test"), or where no held-out
    view has a mask (a capture annotated on a few views), its masked views other than the reference ("train")."""
    masked = dataset.ground_truth.masked_views(name)
    held_out = [i for i in map(int, dataset.test) if i in masked]
    if held_out:
        return held_out, "test"
    return [i for i in masked if i != reference], "train"


@dataclass
class Segmented:
    """An object segmented from automatic clicks, waiting to be scored."""

    name: str
    view: int  # the reference view the clicks are on
    clicks: np.ndarray  # [N,2] pixels of the image file
    result: ObjectResult


def segment_reference(segmenter: SceneSegmenter, name: str, settings: EvalSettings = EvalSettings(),
                      progress: Progress | None = None) -> Segmented:
    """Segment `name` from automatic clicks on the view where its ground-truth mask is largest."""
    dataset = segmenter.dataset
    if dataset.ground_truth is None:
        raise DatasetError(dataset.root, "no ground_truth.json: evaluation needs ground-truth masks "
                                         "(meshes are optional)")
    view = reference_view(segmenter, name)
    if not scored_views(dataset, name, view)[0]:
        raise DatasetError(dataset.ground_truth.path, f"object '{name}' has a mask on no view but its reference view "
                                                      f"'{dataset.cameras.names[view]}': nothing to score it on")
    clicks = reference_clicks(dataset.ground_truth.object_mask(name, view), settings.max_clicks)
    result = segmenter.segment(name, view, clicks, np.ones(len(clicks), dtype=np.int64), settings=settings.sa3d,
                               progress=progress)
    return Segmented(name, view, clicks, result)


def score_object(segmenter: SceneSegmenter, segmented: Segmented, settings: EvalSettings = EvalSettings(),
                 mesh_dir: Path | None = None) -> dict:
    """Score a segmented object with its 3-D mask as it stands now on every masked test view (scored_views), and its
    mesh, written to mesh_dir/<name>.ply when given."""
    dataset, name = segmenter.dataset, segmented.name
    info = dataset.ground_truth.object(name)
    click_point = _click_world_point(segmenter, segmented.view, segmented.clicks[0])
    views, scored_on = scored_views(dataset, name, segmented.view)
    per_view = {}
    for i in views:
        truth = dataset.ground_truth.object_mask(name, i)
        predicted = segmenter.view_mask(name, i, size=truth.shape[::-1])
        rendered = segmenter.view_mask(name, i, size=truth.shape[::-1], refine=False)
        baseline = _single_view_baseline(segmenter, i, click_point)
        per_view[dataset.cameras.names[i]] = {
            "iou": mask_iou(predicted, truth), "accuracy": mask_accuracy(predicted, truth),
            "rendered_iou": mask_iou(rendered, truth),
            "baseline_iou": mask_iou(baseline, truth), "baseline_accuracy": mask_accuracy(baseline, truth),
            "oracle_iou": mask_iou(oracle_click_mask(segmenter, i, truth), truth),
        }
    scores = {key: float(np.mean([v[key] for v in per_view.values()])) for key in
              ("iou", "accuracy", "rendered_iou", "baseline_iou", "baseline_accuracy", "oracle_iou")}
    result = segmented.result
    out = {"name": name, "reference_view": dataset.cameras.names[segmented.view], "clicks": segmented.clicks.tolist(),
           **scores, "scored_on": scored_on, "used_views": len(result.used_views),
           "skipped_views": result.skipped_views, "view_counts": result.status_counts(),
           "segment_seconds": result.seconds, "per_view": per_view}
    if settings.meshes:
        out.update(_mesh_scores(segmenter, name, info.mesh_path, views, settings, mesh_dir))
    return out


def evaluate_object(segmenter: SceneSegmenter, name: str, settings: EvalSettings = EvalSettings(),
                    progress: Progress | None = None, mesh_dir: Path | None = None) -> dict:
    """segment_reference, then score_object. Needs ground truth."""
    return score_object(segmenter, segment_reference(segmenter, name, settings, progress), settings, mesh_dir)


def evaluate_scene(segmenter: SceneSegmenter, settings: EvalSettings = EvalSettings(),
                   progress: Progress | None = None, mesh_dir: Path | None = None) -> dict:
    """Every ground-truth object segmented, then each scored with the final masks (an object nested in another is
    taken out of its container only once both are segmented, as in `segment --prompts`); means and a table."""
    objects = segmenter.dataset.ground_truth.objects if segmenter.dataset.ground_truth else []
    results, segmented = {}, []
    for k, info in enumerate(objects):
        if progress is not None:
            progress(k / len(objects), f"object {info.name} ({k + 1}/{len(objects)})")
        try:
            segmented.append(segment_reference(segmenter, info.name, settings))
        except (PromptError, DatasetError) as exc:  # one object SA3D cannot place must not hide the others' scores
            log.warning("object %s failed: %s", info.name, exc)
            # scored as nothing found, so a failure lowers the means instead of leaving them
            results[info.name] = {"name": info.name, "error": str(exc), "iou": 0.0, "accuracy": float("nan"),
                                  **({"fscore": 0.0, "fscore_fine": 0.0} if info.mesh_path else {})}
    for done in segmented:
        try:
            results[done.name] = score_object(segmenter, done, settings, mesh_dir)
        except DatasetError as exc:
            log.warning("object %s cannot be scored: %s", done.name, exc)
            results[done.name] = {"name": done.name, "error": str(exc), "iou": float("nan"), "accuracy": float("nan")}
    results = {info.name: results[info.name] for info in objects}
    keys = ("iou", "accuracy", "rendered_iou", "baseline_iou", "baseline_accuracy", "oracle_iou", "fscore", "fscore_fine", "precision", "recall",
            "normal_consistency", "chamfer", "appearance_psnr_vertex", "appearance_psnr_texture", "segment_seconds")
    # over the objects that have the score: a capture without ground-truth meshes has no F-score to average
    mean = {key: float(np.mean([r[key] for r in results.values() if key in r])) for key in keys
            if any(key in r for r in results.values())}
    summary = {"objects": results, "mean": mean}
    summary["table"] = format_table(summary)
    return summary


def prompts_of(summary: dict) -> dict:
    """The automatic clicks of an evaluation as a prompts file (the schema `segment --prompts` and the batch read)."""
    return {"objects": [{"name": name, "view": r["reference_view"], "points": r["clicks"], "labels": [1] * len(r["clicks"])}
                        for name, r in summary["objects"].items() if "clicks" in r]}


def comparison_image(segmenter: SceneSegmenter, view: int) -> np.ndarray:
    """[H, 3W, 3] float: the view's image | ground-truth object masks | SA3D's 3-D masks rendered there, coloured per object."""
    dataset = segmenter.dataset
    image = dataset.load_image(view)
    palette = np.array([[0.9, 0.3, 0.2], [0.2, 0.7, 0.3], [0.2, 0.4, 0.9], [0.95, 0.8, 0.1], [0.7, 0.3, 0.8],
                        [0.1, 0.8, 0.8], [0.9, 0.5, 0.1], [0.5, 0.5, 0.5]])
    gt_panel, sa3d_panel = image * 0.3, image * 0.3
    for k, info in enumerate(dataset.ground_truth.objects):
        color = palette[k % len(palette)]
        truth = dataset.ground_truth.object_mask(info.name, view)
        if truth is not None:
            gt_panel = np.where(truth[..., None], color, gt_panel)
        if info.name in segmenter.mask_grid.names:
            sa3d_panel = np.where(segmenter.view_mask(info.name, view, size=image.shape[1::-1])[..., None], color,
                                  sa3d_panel)
    return np.concatenate([image, gt_panel, sa3d_panel], axis=1)


def format_table(summary: dict) -> str:
    columns = [("iou", "IoU"), ("accuracy", "Acc"), ("rendered_iou", "IoU 3D-only"), ("baseline_iou", "SAM-1view IoU"),
               ("oracle_iou", "SAM-oracle"),
               ("views", "u/r/f/s views"), ("fscore", "F@1%"),
               ("fscore_fine", "F@0.5%"), ("precision", "P@1%"), ("recall", "R@1%"), ("normal_consistency", "normals"),
               ("parts", "parts"), ("truth_parts", "GT parts"), ("appearance_psnr_vertex", "PSNR vcol"),
               ("appearance_psnr_texture", "PSNR tex"), ("segment_seconds", "seconds")]
    rows = [(name, {**r, "views": _view_counts(r)}) for name, r in summary["objects"].items()] + [("mean", summary["mean"])]
    header = f"{'object':<12}" + "".join(f"{title:>15}" for _, title in columns)
    lines = [header, "-" * len(header)]
    for name, r in rows:
        cells = "".join(f"{_fmt(r.get(key)):>15}" for key, _ in columns)
        lines.append(f"{name:<12}{cells}")
    return "\n".join(lines)


def _view_counts(result: dict) -> str | None:
    """used / re-prompted / fallback / skipped propagation views, e.g. "40/5/2/0"."""
    counts = result.get("view_counts")
    return None if counts is None else "/".join(str(counts[k]) for k in ("used", "reprompted", "fallback", "skipped"))


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"


def _click_world_point(segmenter: SceneSegmenter, view: int, click: np.ndarray) -> np.ndarray:
    """The 3-D point under a click: the pixel's ray at the field's rendered depth."""
    weights = segmenter.cache.weights(view)
    col, row = (int(v) for v in click * segmenter.file_scale(view))
    origins, dirs = segmenter.cameras.pixel_rays(view)
    k = row * weights.shape[1] + col
    return origins[k] + dirs[k] * weights.depth[row, col]


def oracle_click_mask(segmenter: SceneSegmenter, view: int, truth: np.ndarray) -> np.ndarray:
    """SAM alone on `view` with one perfect click (the pixel deepest inside the ground-truth mask `truth`, at the image
    file's size): its top-scored mask at that size; empty where the object is not in view. The bar SA3D must clear."""
    if not truth.any():
        return np.zeros_like(truth)
    result = segmenter.candidates(view, reference_clicks(truth, 1), np.ones(1, dtype=np.int64))
    mask = result.masks[int(np.argmax(result.scores))]
    h, w = truth.shape
    return mask if mask.shape == (h, w) else resize_image(mask.astype(np.float32), (w, h), smooth=True) > 0.5


def _single_view_baseline(segmenter: SceneSegmenter, view: int, point: np.ndarray) -> np.ndarray:
    """SAM alone on `view`, clicked where the reference click's 3-D point projects; its top-scored mask, at the image
    file's size."""
    cameras = segmenter.full_cameras
    h, w = int(cameras.height[view]), int(cameras.width[view])
    xy, depth = cameras.project(view, point[None])
    x, y = xy[0]
    if not (depth[0] > 0 and 0 <= x < w and 0 <= y < h):
        return np.zeros((h, w), dtype=bool)
    result = segmenter.candidates(view, xy, np.ones(1, dtype=np.int64))
    mask = result.masks[int(np.argmax(result.scores))]
    return mask if mask.shape == (h, w) else resize_image(mask.astype(np.float32), (w, h), smooth=True) > 0.5


def _mesh_scores(segmenter: SceneSegmenter, name: str, truth_path: Path | None, views: list[int],
                 settings: EvalSettings, mesh_dir: Path | None) -> dict:
    """F-score at fractions of the object's own bounding-box diagonal (a scene-box fraction is centimetres wide on a
    room and passes any blob), precision and recall, normal consistency and connected parts against the truth's
    (without a ground-truth mesh: the parts alone); the appearance on `views` against the photos."""
    photos = list(segmenter.photos())
    refined = {}
    try:
        local = None
        if settings.refine is not None:
            local = refine_object(segmenter.field, segmenter.object_grid(name), segmenter.image_cameras,
                                  segmenter.views, segmenter.dataset.load_image, settings.refine)
            refined = {"refine_seconds": local.summary["seconds"], "refine_psnr": [local.summary["psnr_before"],
                                                                                   local.summary["psnr_after"]]}
        mesh = extract_object(segmenter.field, segmenter.object_grid(name), settings.extraction, photos, local,
                              segmenter.other_objects(name), segmenter.silhouettes(name, photos),
                              segmenter.visibility(name))
    except SA3DError as exc:
        log.warning("no mesh for this object: %s", exc)
        mesh = trimesh.Trimesh()
    written, appearance = {}, {}
    if len(mesh.faces) and settings.texture:
        textured = bake_texture(mesh, photos)
        appearance = appearance_psnr(segmenter.dataset, name, mesh, textured, views)
        if mesh_dir is not None:
            written["textured_mesh"] = str(write_mesh(textured.trimesh(), Path(mesh_dir) / f"{name}.glb"))
            view = max(views, key=lambda i: int(segmenter.dataset.ground_truth.object_mask(name, i).sum()))
            png = Path(mesh_dir) / f"{name}_{segmenter.dataset.cameras.names[view]}_appearance.png"
            written["appearance_png"] = str(write_png(png, appearance_image(segmenter.dataset, view, mesh, textured)))
    if mesh_dir is not None and len(mesh.faces):
        written["mesh"] = str(write_mesh(mesh, Path(mesh_dir) / f"{name}.ply"))
    scores = {**written, **appearance, **refined, "parts": connected_parts(mesh)}
    if truth_path is None:
        return scores
    truth = trimesh.load(truth_path, force="mesh")
    diagonal = float(np.linalg.norm(truth.bounds[1] - truth.bounds[0]))
    coarse, fine = (mesh_distances(mesh, truth, fraction * diagonal) for fraction in settings.fscore_fractions)
    return {**scores, "fscore": coarse["fscore"], "precision": coarse["precision"], "recall": coarse["recall"],
            "fscore_fine": fine["fscore"], "chamfer": coarse["chamfer"],
            "normal_consistency": coarse["normal_consistency"], "truth_parts": connected_parts(truth),
            "fscore_thresholds": [f * diagonal for f in settings.fscore_fractions]}


MIN_OBJECT_PIXELS = 20  # test views where less of the object is visible say nothing about its colours


def appearance_psnr(dataset, name: str, mesh: trimesh.Trimesh, textured: TexturedMesh, views: list[int]) -> dict:
    """PSNR of the mesh rendered from each of `views` (masked test views) against the photo, inside the object's
    ground-truth mask: with its vertex colours and with its photo texture (pixels the mesh misses count as black),
    and the texture's on the pixels the mesh covers."""
    vertex_rgb = np.asarray(mesh.visual.vertex_colors, dtype=np.float64)[:, :3] / 255.0
    scores = {"vertex": [], "texture": [], "on_mesh": []}
    for i in views:
        photo = dataset.load_image(i)
        truth = dataset.ground_truth.object_mask(name, i)
        if truth.shape != photo.shape[:2]:
            truth = resize_image(truth.astype(np.float32), photo.shape[1::-1], smooth=True) > 0.5
        if truth.sum() < MIN_OBJECT_PIXELS:
            continue
        plain, _ = render_colours(np.asarray(mesh.vertices), mesh.faces, dataset.cameras, i, vertex_rgb=vertex_rgb)
        painted, covered = render_colours(textured.vertices, textured.faces, dataset.cameras, i, uv=textured.uv,
                                          texture=textured.image)
        scores["vertex"].append(psnr(plain[truth], photo[truth]))
        scores["texture"].append(psnr(painted[truth], photo[truth]))
        scores["on_mesh"].append(psnr(painted[truth & covered], photo[truth & covered]))
    if not scores["vertex"]:
        return {}
    # "on_mesh": the texture alone, where the mesh covers the object (the silhouette's misses left out)
    return {"appearance_psnr_vertex": float(np.mean(scores["vertex"])),
            "appearance_psnr_texture": float(np.mean(scores["texture"])),
            "appearance_psnr_texture_on_mesh": float(np.mean(scores["on_mesh"])), "texture_seen": textured.seen_fraction}


def appearance_image(dataset, view: int, mesh: trimesh.Trimesh, textured: TexturedMesh) -> np.ndarray:
    """[H, 3W, 3] float: the photo | the textured mesh | the vertex-coloured mesh, from camera `view`."""
    vertex_rgb = np.asarray(mesh.visual.vertex_colors, dtype=np.float64)[:, :3] / 255.0
    painted, _ = render_colours(textured.vertices, textured.faces, dataset.cameras, view, uv=textured.uv,
                                texture=textured.image)
    plain, _ = render_colours(np.asarray(mesh.vertices), mesh.faces, dataset.cameras, view, vertex_rgb=vertex_rgb)
    return np.concatenate([dataset.load_image(view), painted, plain], axis=1)
