"""Train a voxel radiance field on a dataset's training views and report held-out test-view PSNR.

Example: python -m sa3d_blender train out/demo_scene --out out/demo_field.pt --seconds 240
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from ..core.data.datasets import DEFAULT_PIXEL_BUDGET, SCENE_TYPES, load_dataset
from ..core.devices import pick_device
from ..core.field.field_checkpoint import save_field
from ..core.field.training import TrainSettings, evaluate_views, evaluation_dataset, train_field
from ..core.field.voxel_field import FieldConfig

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainSettings()
    parser.add_argument("dataset", type=Path, help="dataset folder, transforms.json or poses_bounds.npy")
    parser.add_argument("--out", type=Path, required=True, help="field checkpoint to write (.pt)")
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help="training time budget (default %(default)s)")
    parser.add_argument("--iterations", type=int, default=None, help="fixed iteration count instead of a time budget")
    parser.add_argument("--num-voxels", type=int, default=defaults.num_voxels_end, help="final grid size in voxels")
    parser.add_argument("--sh-degree", type=int, choices=(0, 1), default=FieldConfig().sh_degree,
                        help="0: diffuse colour, 1: first-order view-dependent colour")
    parser.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cuda, mps or cpu")
    parser.add_argument("--seed", type=int, default=0)
    add_dataset_arguments(parser)


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """How a capture is read: shared by every command that opens a dataset."""
    parser.add_argument("--scene-type", choices=SCENE_TYPES, default=None,
                        help="unbounded (360-degree capture), forward (forward-facing) or bounded (nothing outside "
                             "the box); default: from the cameras")
    parser.add_argument("--pixel-budget", type=int, default=DEFAULT_PIXEL_BUDGET,
                        help="pixels per view that training and SA3D work on; larger images are reduced "
                             "(default %(default)s; 0: full size)")
    parser.add_argument("--image-dir", default=None, help="LLFF image folder (default: the largest of images, "
                                                          "images_2, images_4, images_8)")


def open_dataset(args: argparse.Namespace):
    """(full-size dataset, working-resolution dataset) from the dataset arguments."""
    dataset = load_dataset(args.dataset, image_dir=args.image_dir, scene_type=args.scene_type)
    return dataset, dataset.at_pixel_budget(args.pixel_budget)


class _ProgressLog:
    """Logs training progress every 10 % of the budget."""

    def __init__(self):
        self.next = 0.0

    def __call__(self, fraction: float, loss: float, psnr: float) -> None:
        if fraction >= self.next:
            log.info("train %3.0f%%  loss %.5f  train PSNR %.2f dB", 100 * fraction, loss, psnr)
            self.next = fraction + 0.1


def run(args: argparse.Namespace) -> dict:
    dataset, work = open_dataset(args)
    device = pick_device(args.device)
    settings = TrainSettings(seconds=args.seconds, iterations=args.iterations, num_voxels_end=args.num_voxels,
                             seed=args.seed, field=FieldConfig(sh_degree=args.sh_degree))
    size = f"{work.cameras.width[0]}x{work.cameras.height[0]}"
    log.info("training on %d views at %s (%s scene, %s), %s", len(work.train), size, work.scene_type, device,
             dataset.root)
    field, summary = train_field(work, settings, device=device, progress=_ProgressLog())
    path = save_field(args.out, field, work.cameras, extra={"dataset": str(dataset.root.resolve())})
    # scored on the image files' own size (up to a cap and a time), whatever the working resolution
    start = time.perf_counter()
    scored = evaluation_dataset(dataset, field, device)
    evaluation = evaluate_views(field, scored, scored.test, device=device)
    summary["eval_seconds"] = time.perf_counter() - start
    summary["eval_size"] = [int(scored.cameras.width[0]), int(scored.cameras.height[0])]
    log.info("test PSNR %.2f dB over %d held-out views at %dx%d; field written to %s", evaluation["psnr"],
             len(dataset.test), *summary["eval_size"], path)
    return {"checkpoint": str(path), "dataset": str(dataset.root), "device": str(device), "test_psnr": evaluation["psnr"],
            "per_view_psnr": evaluation["per_view_psnr"], "scene_type": work.scene_type,
            "working_size": [int(work.cameras.width[0]), int(work.cameras.height[0])], **summary}
