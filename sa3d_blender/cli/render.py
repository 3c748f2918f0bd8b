"""Render a trained field from dataset cameras: RGB and depth PNGs, with PSNR where the dataset has the image.

Example: python -m sa3d_blender render --field out/demo_field.pt --dataset out/demo_scene --split test --out out/renders
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from ..core.data.datasets import load_dataset
from ..core.data.image_io import write_png
from ..core.devices import pick_device
from ..core.errors import SA3DError
from ..core.field.field_checkpoint import load_field
from ..core.field.rendering import render_image
from ..core.metrics import psnr

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--field", type=Path, required=True, help="field checkpoint written by `train`")
    parser.add_argument("--dataset", type=Path, help="dataset (default: the one the field was trained on)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--view", action="append", default=[], help="view name to render (repeatable)")
    which.add_argument("--split", choices=("train", "test", "all"), default="test")
    parser.add_argument("--out", type=Path, required=True, help="folder for <view>_rgb.png and <view>_depth.png")
    parser.add_argument("--device", default="auto")


def run(args: argparse.Namespace) -> dict:
    device = pick_device(args.device)
    field, cameras, extra = load_field(args.field, device=device)
    dataset_path = args.dataset or (Path(extra["dataset"]) if extra.get("dataset") else None)
    dataset = load_dataset(dataset_path) if dataset_path else None
    if dataset is not None:
        cameras = dataset.cameras
    if args.view:
        indices = [cameras.index(name) for name in args.view]
    elif dataset is None:
        if args.split != "all":
            raise SA3DError("--split needs the dataset (pass --dataset): the checkpoint stores cameras, not the split")
        indices = list(range(len(cameras)))
    else:
        indices = {"train": list(dataset.train), "test": list(dataset.test), "all": list(range(len(cameras)))}[args.split]
    args.out.mkdir(parents=True, exist_ok=True)
    views = {}
    for i in indices:
        i = int(i)
        origins, dirs = cameras.pixel_rays(i)
        image = render_image(field, origins, dirs, int(cameras.height[i]), int(cameras.width[i]), device=device)
        name = cameras.names[i]
        write_png(args.out / f"{name}_rgb.png", image["rgb"])
        depth = image["depth"] * (image["acc"] > 0.5)
        write_png(args.out / f"{name}_depth.png", depth / max(float(depth.max()), 1e-6))
        entry = {"rgb": str(args.out / f"{name}_rgb.png")}
        if dataset is not None and cameras.image_paths[i] is not None:
            entry["psnr"] = psnr(image["rgb"], dataset.load_image(i))
            log.info("%s: PSNR %.2f dB", name, entry["psnr"])
        views[name] = entry
    values = [v["psnr"] for v in views.values() if "psnr" in v]
    return {"out": str(args.out), "views": views, "mean_psnr": float(np.mean(values)) if values else None}
