"""Evaluate SA3D on a scene with ground truth: every object from automatic clicks, test-view IoU, baseline, mesh F-score."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..core.atomic_files import atomic_write
from ..core.data.image_io import write_png
from ..core.errors import DatasetError
from ..core.evaluation import EvalSettings, comparison_image, evaluate_scene, prompts_of
from ..core.field.local_refinement import RefineSettings
from .segment import add_common_arguments, add_refine_argument, log_progress, open_scene

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for results.json, prompts.json (the automatic clicks), meshes/<object>.ply and "
                             "<view>_comparison.png (image | ground truth | SA3D mask) of the first test view")
    add_refine_argument(parser)


def run(args: argparse.Namespace) -> dict:
    scene = open_scene(args)
    if scene.dataset.ground_truth is None:
        raise DatasetError(scene.dataset.root, "no ground_truth.json: evaluation needs ground-truth masks (meshes are optional)")
    scene.prepare(log_progress)
    settings = EvalSettings(refine=RefineSettings(seconds=args.refine_seconds) if args.refine_seconds > 0 else None)
    summary = evaluate_scene(scene, settings, progress=log_progress, mesh_dir=args.out / "meshes" if args.out else None)
    print(summary["table"])
    written = {}
    if args.out is not None:
        _write_json(args.out / "results.json", summary)
        _write_json(args.out / "prompts.json", prompts_of(summary))
        gt = scene.dataset.ground_truth
        masked = [int(i) for i in scene.dataset.test if any(i in gt.masked_views(o.name) for o in gt.objects)]
        view = masked[0] if masked else int(scene.dataset.test[0])
        png = args.out / f"{scene.dataset.cameras.names[view]}_comparison.png"
        write_png(png, comparison_image(scene, view))
        written = {"results": str(args.out / "results.json"), "prompts": str(args.out / "prompts.json"),
                   "comparison_png": str(png)}
    return {**written, "mean": summary["mean"], "objects": {n: {k: v for k, v in r.items() if k != "per_view"}
                                                            for n, r in summary["objects"].items()}}


def _write_json(path: Path, data: dict) -> None:
    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=1, default=float)
