"""Segment objects of a trained field with SA3D from clicks on one view (or a prompts file); write their 3-D masks.

Prompts file (--prompts P.json):
    {"objects": [{"name": "duck", "view": "0003", "points": [[x, y], ...], "labels": [1, 0, ...],
                  "box": [x0, y0, x1, y1], "mask_choice": 0}]}
- name: unique object name; view: a view name of the dataset (image file stem);
- points: pixel coordinates, origin at the image's top-left corner (pixel centres at +0.5), x right, y down;
- labels: one per point, 1 = object, 0 = background; box (optional): pixel box; mask_choice (optional): which of
  SAM's 3 candidate masks to use on that view (default: SAM's single mask for several clicks, its best-scored
  candidate for one click, passed over for one that holds the clicks or stays on the clicked surface).
Outputs in --out: <name>.npz (mask grid) per object, masks/<name>/<view>.png (rendered test-view masks at the image
files' size) and overlays/<name>/<view>.png (the test photo with the mask tinted over it, at the working size);
with --mesh, meshes/<name>.<format>, its photo texture meshes/<name>_texture.png and
meshes/<name>_<view>_appearance.png (held-out photo | textured mesh | vertex-coloured mesh).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..core.data.image_io import mask_overlay, write_png
from ..core.errors import PromptError, SA3DError
from ..core.field.field_checkpoint import load_field
from ..core.evaluation import appearance_image
from ..core.field.local_refinement import RefineSettings
from ..core.mesh.object_export import export_object, refine_object
from ..core.metrics import mask_iou
from ..core.segment.prompts import ObjectPrompt, read_prompts
from ..core.segment.sa3d import ObjectResult, SceneSegmenter, write_object_mask
from ..core.segment.segmenters import load_segmenter
from .train import add_dataset_arguments, open_dataset

log = logging.getLogger(__name__)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--field", type=Path, required=True, help="trained field checkpoint (.pt)")
    parser.add_argument("--dataset", type=Path, required=True, help="dataset folder or transforms.json")
    parser.add_argument("--segmenter", default="mobile_sam", help="SAM kind (default: mobile_sam)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="SAM weights (default: the cached MobileSAM)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--cache", type=Path, default=None, help="view cache folder (default: ~/.cache/sa3d_blender)")
    add_dataset_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--view", help="view name the clicks are on")
    parser.add_argument("--click", action="append", default=[], metavar="X,Y", help="object click (repeatable)")
    parser.add_argument("--negative", action="append", default=[], metavar="X,Y", help="background click (repeatable)")
    parser.add_argument("--box", metavar="X0,Y0,X1,Y1", help="box prompt")
    parser.add_argument("--name", default="object", help="object name for --click prompts (default: object)")
    parser.add_argument("--mask-choice", type=int, default=None, help="SAM candidate 0, 1 or 2 (default: best scored)")
    parser.add_argument("--prompts", type=Path, help="prompts JSON file (see the command's description)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--mesh", choices=("glb", "obj", "ply"), default=None,
                        help="also write meshes/<name>.<format>, with a photo texture (GLB and OBJ carry it, PLY "
                             "keeps vertex colours; the texture PNG is written beside it)")
    add_refine_argument(parser)


def add_refine_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--refine-seconds", type=float, default=0.0,
                        help="before meshing, train a finer field over each object's box for this many seconds "
                             "(default 0: mesh the scene field; see README, 'Meshes')")


def open_scene(args: argparse.Namespace) -> SceneSegmenter:
    """Field + dataset + SAM, from the common arguments."""
    field, _, _ = load_field(args.field, device="cpu" if args.device == "auto" else args.device)
    _, dataset = open_dataset(args)
    segmenter = load_segmenter(args.segmenter, args.checkpoint, args.device)
    return SceneSegmenter(field, dataset, segmenter, cache_folder=args.cache)


def log_progress(fraction: float, message: str) -> None:
    log.info("%3.0f%% %s", 100 * fraction, message)


def run(args: argparse.Namespace) -> dict:
    """Every object of the prompts; one that fails is reported under "failed" and the others still run."""
    scene = open_scene(args)
    prompts = read_prompts(args.prompts) if args.prompts else [_prompt_from_arguments(args)]
    failed = {}
    for prompt in prompts:
        try:
            scene.view_index(prompt.view)  # unknown views fail before the slow preparation
        except PromptError as exc:
            failed[prompt.name] = str(exc)
    scene.prepare(log_progress)
    segmented = {}
    for prompt in prompts:
        if prompt.name in failed:
            continue
        try:
            segmented[prompt.name] = scene.segment(prompt.name, prompt.view, prompt.points, prompt.labels, prompt.box,
                                                   prompt.mask_choice, progress=log_progress)
        except SA3DError as exc:
            log.error("%s failed: %s", prompt.name, exc)
            failed[prompt.name] = str(exc)
    # written once every object is segmented: a ball segmented after its tray still takes itself out of the tray
    objects = {name: _write_object(scene, result, args.out, args.mesh, args.refine_seconds)
               for name, result in segmented.items()}
    return {"out": str(args.out), "objects": objects, "failed": failed}


def _write_object(scene: SceneSegmenter, result: ObjectResult, out: Path, mesh_format: str | None,
                  refine_seconds: float = 0.0) -> dict:
    gt, name = scene.dataset.ground_truth, result.name
    grid = scene.object_grid(name)
    write_object_mask(out / f"{name}.npz", replace(result, grid=grid), scene.cache.field_id)
    summary = {"used_views": len(result.used_views), "view_counts": result.status_counts(),
               "skipped_views": result.skipped_views, "seconds": round(result.seconds, 2)}
    if mesh_format is not None:
        path = out / "meshes" / f"{name}.{mesh_format}"
        local = None
        if refine_seconds > 0:
            local = refine_object(scene.field, grid, scene.image_cameras, scene.views, scene.dataset.load_image,
                                  RefineSettings(seconds=refine_seconds))
            summary["refine"] = local.summary
        photos = list(scene.photos())
        mesh, textured = export_object(scene.field, grid, path, photos=photos, local=local,
                                       others=scene.other_objects(name), silhouettes=scene.silhouettes(name, photos),
                                       visibility=scene.visibility(name))
        summary.update(mesh=str(path), faces=len(mesh.faces), texture_seen=round(textured.seen_fraction, 3))
        if len(scene.dataset.test):  # the mesh beside a held-out photo: the view that sees most of the object
            view = max(map(int, scene.dataset.test), key=lambda i: float(scene.render_mask(name, i).sum()))
            png = out / "meshes" / f"{name}_{scene.cameras.names[view]}_appearance.png"
            summary["appearance_png"] = str(write_png(png, appearance_image(scene.dataset, view, mesh, textured)))
    ious = {}
    for i in scene.dataset.test:
        view = scene.cameras.names[int(i)]
        full = scene.full_cameras
        mask = scene.view_mask(name, int(i), size=(full.width[i], full.height[i]))
        write_png(out / "masks" / name / f"{view}.png", mask.astype(np.uint8) * 255)
        if scene.cameras.image_paths[i] is not None:
            image = scene.dataset.load_image(int(i))
            shown = scene.view_mask(name, int(i), size=(image.shape[1], image.shape[0]))
            write_png(out / "overlays" / name / f"{view}.png", mask_overlay(image, shown))
        truth = gt.object_mask(name, int(i)) if gt is not None and name in [o.name for o in gt.objects] else None
        if truth is not None:
            ious[view] = mask_iou(mask, truth)
    if ious:
        summary["test_iou"] = float(np.mean(list(ious.values())))
    log.info("%s: %s", name, summary)
    return summary


def _prompt_from_arguments(args: argparse.Namespace) -> ObjectPrompt:
    if args.view is None or not (args.click or args.box):
        raise PromptError("give --view with --click X,Y (and optionally --negative / --box), or --prompts P.json")
    points = [_numbers(c, 2, "--click") for c in args.click] + [_numbers(c, 2, "--negative") for c in args.negative]
    labels = [1] * len(args.click) + [0] * len(args.negative)
    box = np.array(_numbers(args.box, 4, "--box")) if args.box else None
    return ObjectPrompt(args.name, args.view, np.array(points, dtype=np.float64).reshape(-1, 2),
                        np.array(labels, dtype=np.int64), box, args.mask_choice)


def _numbers(text: str, count: int, option: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != count:
        raise PromptError(f"{option} {text!r}: expected {count} comma-separated numbers")
    return values
