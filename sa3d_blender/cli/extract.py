"""Extract a coloured mesh per segmented object (the .npz mask grids written by `segment`) from the trained field."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..core.errors import InputFileError
from ..core.field.field_checkpoint import load_field
from ..core.mesh.mesh_extraction import ExtractionSettings, write_mesh
from ..core.mesh.object_export import extract_object
from ..core.segment.sa3d import read_object_mask
from ..core.segment.view_cache import field_identity

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--field", type=Path, required=True, help="the field checkpoint the masks were made with")
    parser.add_argument("--masks", type=Path, required=True, help="folder with <object>.npz from `segment`")
    parser.add_argument("--out", type=Path, required=True, help="output folder for the meshes")
    parser.add_argument("--format", choices=("ply", "glb", "obj"), default="ply", help="mesh format (default: ply)")
    parser.add_argument("--level", type=float, default=ExtractionSettings.level,
                        help="surface level: opacity over 2%% of the inner region's diagonal, in (0, 1) (default: %(default)s)")


def run(args: argparse.Namespace) -> dict:
    field, _, _ = load_field(args.field)
    files = sorted(args.masks.glob("*.npz"))
    if not files:
        raise InputFileError(args.masks, "no object mask files (*.npz from `segment`) in this folder")
    field_id = field_identity(field)
    meshes = {}
    for path in files:
        name, grid, mask_field_id = read_object_mask(path)
        if grid.shape != tuple(field.shape) or mask_field_id != field_id:
            raise InputFileError(path, f"mask grid {list(grid.shape)} was made with another field than {args.field}")
        mesh = extract_object(field, grid, ExtractionSettings(level=args.level))
        out = write_mesh(mesh, args.out / f"{name}.{args.format}")
        meshes[name] = {"path": str(out), "vertices": len(mesh.vertices), "faces": len(mesh.faces)}
        log.info("%s: %s", name, meshes[name])
    return {"meshes": meshes}
