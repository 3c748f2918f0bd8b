"""Render a synthetic multi-view scene (images, exact object masks, ground-truth meshes) with Blender.

The output folder is a dataset in the project's scene format (transforms.json + ground_truth.json), written atomically.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)

PRESET_NAMES = ("demo", "tiny", "room", "forward", "lookalike", "thin")  # kept here so --help works without importing bpy


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="output scene folder (must not exist or be empty, unless --overwrite)")
    parser.add_argument("--preset", choices=PRESET_NAMES, default="demo", help="scene content and size (default: demo)")
    parser.add_argument("--seed", type=int, default=0, help="layout and camera seed (default: 0)")
    parser.add_argument("--resolution", type=int, default=None, help="image width = height in pixels (preset default)")
    parser.add_argument("--views", type=int, default=None, help="number of views (preset default)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")


def run(args: argparse.Namespace) -> dict:
    from ..blender.scene_generator import make_scene  # imports bpy

    return make_scene(
        args.out,
        preset=args.preset,
        seed=args.seed,
        resolution=args.resolution,
        n_views=args.views,
        progress=lambda fraction, message: log.debug("%3.0f%% %s", 100 * fraction, message),
        overwrite=args.overwrite,
    )
