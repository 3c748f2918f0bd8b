"""Batch segmentation inside Blender (scripts/sa3d_batch.py and `blender --command sa3d`): cameras, field, every object
of a prompts file through the worker, meshes imported; writes OUT/scene.blend, OUT/meshes/*.ply and OUT/preview.png
(dataset image | render of the meshes), and prints a JSON summary as the last line.

Prompts file: {"objects": [{"name": "duck", "view": "0003", "points": [[x, y], ...], "labels": [1, 0, ...],
"box": [x0, y0, x1, y1] (optional), "mask_choice": 0|1|2 (optional)}]}, pixels with x right, y down, origin top-left.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
import traceback
from pathlib import Path

import bpy
import numpy as np

from ..core.data.cameras import Cameras
from ..core.errors import SA3DError
from ..core.segment.prompts import read_prompts
from ..worker.client import WorkerClient, WorkerDied
from .camera_import import camera_of_view, import_cameras, use_camera
from .jobs import run_steps
from .mesh_import import OBJECT_TAG
from .op_setup_worker import worker_venv_folder
from .worker_session import WorkerSettings, default_worker_python
from .workflow import extract_and_import_steps, load_dataset_steps, load_field_steps, segment_request, train_steps

log = logging.getLogger(__name__)

PREVIEW_MIN_SIDE = 256  # small captures (96 px) are rendered larger so the preview is readable


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sa3d", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="capture folder, transforms.json or poses_bounds.npy")
    parser.add_argument("--prompts", required=True, type=Path, help="prompts JSON (see the module docstring)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--field", type=Path, help="trained field checkpoint to load (default: train into OUT/field.pt)")
    parser.add_argument("--train-seconds", type=float, default=240.0, help="training time budget when training")
    parser.add_argument("--train-settings", type=json.loads, default={},
                        help='JSON overrides of the training settings, e.g. \'{"num_voxels_end": 884736}\'')
    parser.add_argument("--extract-settings", type=json.loads, default={},
                        help='JSON mesh extraction settings, e.g. \'{"level": 0.3, "smooth_iterations": 5}\'')
    parser.add_argument("--python", help="worker Python with torch (default: the project venv, else this Python)")
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"])
    parser.add_argument("--segmenter", default="mobile_sam", choices=["mobile_sam", "vit_b", "vit_l", "vit_h"])
    parser.add_argument("--sam-checkpoint", help="SAM weights (default: the project's MobileSAM weights)")
    return parser


def run(args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    out = args.out.expanduser().resolve()
    dataset_path = str(Path(args.dataset).expanduser().resolve())
    settings = WorkerSettings(
        python=args.python or default_worker_python(worker_venv_folder()),
        device=args.device,
        segmenter=args.segmenter,
        sam_checkpoint=args.sam_checkpoint,
    )
    client = WorkerClient(python=settings.python, device=settings.device)
    try:
        # the worker reads the capture: Blender's own Python has no image or COLMAP readers
        loaded = run_steps(client, load_dataset_steps(dataset_path), _log_progress)
        cameras = loaded["cameras"]
        prompts = [p.to_request() for p in read_prompts(args.prompts, cameras)]
    except BaseException:
        client.stop()
        raise
    (out / "meshes").mkdir(parents=True, exist_ok=True)
    scene = bpy.context.scene
    bpy.data.batch_remove(list(bpy.data.objects))  # start from an empty scene (the startup file has a cube)
    import_cameras(scene, cameras, loaded["bbox"], dataset_path)

    summary: dict = {"dataset": dataset_path, "objects": [], "failed": {}}
    try:
        if args.field is not None:
            checkpoint = str(args.field.expanduser().resolve())
            summary["field_message"] = run_steps(client, load_field_steps(dataset_path, checkpoint, settings), _log_progress)
        else:
            checkpoint = str(out / "field.pt")
            steps = train_steps(dataset_path, checkpoint, args.train_seconds, settings, args.train_settings)
            summary["field_message"] = run_steps(client, steps, _log_progress)
        summary["field"] = checkpoint
        on_worker = []  # objects the running worker has segmented
        for k, entry in enumerate(prompts):
            # one object's failure is reported for that object; the others still run (on a new worker if it died)
            try:
                summary["objects"].append(_segment_object(client, scene, entry, out, args.extract_settings))
                on_worker.append(summary["objects"][-1])
            except SA3DError as error:
                log.error("%s failed: %s", entry["name"], error)
                summary["failed"][entry["name"]] = str(error)
                if not isinstance(error, WorkerDied):
                    continue
                client.stop()
                on_worker = []
                client = WorkerClient(python=settings.python, device=settings.device)
                try:
                    run_steps(client, load_field_steps(dataset_path, checkpoint, settings), _log_progress)
                except SA3DError as restart_error:
                    for rest in prompts[k + 1:]:
                        summary["failed"][rest["name"]] = f"not run: the worker could not be restarted ({restart_error})"
                    break
        # an object meshed before a later one was segmented still holds what the later one took back (the region
        # where they touch, or the later one when it lies inside): mesh every earlier one again, as eval and
        # `segment --prompts` do; one that fails keeps its first mesh
        for done in on_worker[:-1]:
            try:
                steps = extract_and_import_steps(scene, done["name"], done["mesh"], args.extract_settings)
                obj = run_steps(client, steps, _log_progress)
                done.update(_mesh_summary(obj), meshed_again=True)
            except SA3DError as error:
                log.error("%s: meshing again failed, its first mesh stays: %s", done["name"], error)
    finally:
        client.stop()

    summary["blend"] = str(save_blend(out / "scene.blend"))
    preview_view = str(prompts[0]["view"])
    summary["preview"] = str(render_preview(scene, cameras, preview_view, out / "preview.png"))
    summary["seconds"] = round(time.perf_counter() - start, 2)
    return summary


def _segment_object(client: WorkerClient, scene, entry: dict, out: Path, extract_settings: dict) -> dict:
    """Segment, extract and import one object (batch_main meshes it again once every object is segmented)."""
    name = entry["name"]
    prompt = {key: entry.get(key) for key in ("view", "points", "labels", "box")}
    prompt["view"] = str(prompt["view"])

    def segment():
        return (yield segment_request(name, prompt, entry.get("mask_choice")))

    segmented = run_steps(client, segment(), _log_progress)
    mesh_path = out / "meshes" / f"{bpy.path.clean_name(name)}.ply"
    obj = run_steps(client, extract_and_import_steps(scene, name, str(mesh_path), extract_settings), _log_progress)
    log.info("%s: %d vertices from %d views", name, len(obj.data.vertices), len(segmented["used_views"]))
    return {"name": name, "view": prompt["view"], "mesh": str(mesh_path), **_mesh_summary(obj),
            "used_views": segmented["used_views"], "segment_seconds": segmented["seconds"]}


def _mesh_summary(obj) -> dict:
    """Vertex and face counts of an imported object and its box in the capture's coordinates (NeRF space)."""
    vertices = np.empty(3 * len(obj.data.vertices), dtype=np.float32)
    obj.data.vertices.foreach_get("co", vertices)
    vertices = vertices.reshape(-1, 3) + np.array(obj.location)
    return {"vertices": len(obj.data.vertices), "faces": len(obj.data.polygons),
            "bbox": [vertices.min(axis=0).tolist(), vertices.max(axis=0).tolist()] if len(vertices) else None}


def _log_progress(job) -> None:
    log.info("[%s %3.0f%%] %s %s", job.method, 100 * job.fraction, job.stage, job.message)


def save_blend(path: Path) -> Path:
    partial = path.with_name(f".{path.stem}.partial.blend")
    bpy.ops.wm.save_as_mainfile(filepath=str(partial), copy=True, check_existing=False)
    os.replace(partial, path)
    return path


def render_preview(scene, cameras: Cameras, view: str, path: Path) -> Path:
    """PNG with the dataset image (left, when the view has one) and a Workbench render of the meshes from the same
    camera (right)."""
    camera = camera_of_view(scene, view)
    use_camera(scene, camera)
    width, height = int(camera["sa3d_width"]), int(camera["sa3d_height"])
    scale = max(1, math.ceil(PREVIEW_MIN_SIDE / max(width, height)))
    render = scene.render
    render.engine = "BLENDER_WORKBENCH"
    render.resolution_percentage = 100 * scale
    render.image_settings.file_format = "PNG"
    render.image_settings.color_mode = "RGB"
    render.film_transparent = False
    meshes = [obj for obj in scene.objects if obj.get(OBJECT_TAG) is not None]
    # the photo textures when every mesh has one, else the colour attributes every mesh has; a photo texture already
    # holds the capture's light, so it is shown unlit (studio light on top made the yellow duck olive)
    textured = bool(meshes) and all(obj.data.uv_layers for obj in meshes)
    scene.display.shading.color_type = "TEXTURE" if textured else "VERTEX"
    scene.display.shading.light = "FLAT" if textured else "STUDIO"
    scene.view_settings.view_transform = "Standard"  # show the colours as captured, not tone-mapped
    if scene.world is None:
        scene.world = bpy.data.worlds.new("SA3D preview")
    scene.world.color = (0.05, 0.05, 0.05)
    rendered_path = path.with_name(f".{path.stem}.render.png")
    render.filepath = str(rendered_path)
    bpy.ops.render.render(write_still=True)
    try:
        rendered = _read_png(rendered_path)
    finally:
        rendered_path.unlink(missing_ok=True)
    image_path = cameras.image_paths[cameras.index(view)]
    if image_path is None or not image_path.is_file():
        _write_png(rendered, path)
        return path
    original = _read_png(image_path)
    rows = (np.arange(rendered.shape[0]) * original.shape[0] // rendered.shape[0])
    cols = (np.arange(rendered.shape[1]) * original.shape[1] // rendered.shape[1])
    side_by_side = np.concatenate([original[rows][:, cols], rendered], axis=1)
    _write_png(side_by_side, path)
    return path


def _read_png(path: Path) -> np.ndarray:
    """float [H,W,3] top row first, values as stored in the file (display-encoded); any format Blender reads."""
    image = bpy.data.images.load(str(path))
    try:
        pixels = np.empty(image.size[0] * image.size[1] * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
        return pixels.reshape(image.size[1], image.size[0], 4)[::-1, :, :3]
    finally:
        bpy.data.images.remove(image)


def _write_png(rgb: np.ndarray, path: Path) -> None:
    height, width = rgb.shape[:2]
    image = bpy.data.images.new("SA3D preview", width, height, alpha=False)
    try:
        rgba = np.concatenate([rgb, np.ones((height, width, 1), dtype=np.float32)], axis=2)[::-1]
        image.pixels.foreach_set(np.ascontiguousarray(rgba, dtype=np.float32).ravel())
        partial = path.with_name(f".{path.stem}.partial.png")
        image.filepath_raw = str(partial)
        image.file_format = "PNG"
        image.save()
        os.replace(partial, path)
    finally:
        bpy.data.images.remove(image)


def main(argv: list[str]) -> int:
    """Run a batch; the JSON summary (or error) is the last line on stdout. 0 = success, 1 = some objects failed
    (listed under "failed") or a bug, 2 = user error that stopped the whole batch."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        summary = run(args)
        # objects that failed among good ones: the others are in the .blend, the exit status says not all worked
        code = 1 if summary["failed"] else 0
        summary = {"ok": code == 0, **summary}
    except SA3DError as error:
        # a worker-side error keeps its own kind (DatasetError, PromptError ...), not "WorkerError"
        kind = getattr(error, "error_type", type(error).__name__)
        summary, code = {"ok": False, "error": str(error), "error_type": kind}, 2
    except Exception as error:  # noqa: BLE001 - a batch must end with its JSON line and a failing exit code
        traceback.print_exc()
        summary, code = {"ok": False, "error": repr(error), "error_type": type(error).__name__}, 1
    print(json.dumps(summary, default=str), flush=True)
    return code


def cli_command(argv: list[str]) -> int:
    """`blender --command sa3d ...` (registered on Blender >= 4.2)."""
    return main(argv)
