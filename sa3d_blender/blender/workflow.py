"""The worker request sequences behind the panel's buttons and the batch command, as step generators (see jobs.py).

Each generator yields (method, params) and receives the result; the Blender scene is touched only after the last
request of a sequence succeeded.
"""

from __future__ import annotations

from pathlib import Path

import bpy

from ..core.data.cameras import Cameras
from ..core.errors import DatasetError
from .addon_id import ADDON_ID
from .camera_import import find_nerf_space, import_cameras
from .jobs import Steps
from .mesh_import import import_mesh
from .worker_session import WorkerSettings


def user_folder(kind: str) -> Path:
    """A writable folder for fields or meshes: the extension's user folder, or ~/.cache/sa3d_blender outside one."""
    if ADDON_ID.startswith("bl_ext."):
        return Path(bpy.utils.extension_path_user(ADDON_ID, path=kind, create=True))
    folder = Path.home() / ".cache" / "sa3d_blender" / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def dataset_path(props) -> str:
    if not props.dataset_path.strip():
        raise DatasetError("(no path)", "no dataset chosen: set the Dataset path in the SA3D panel")
    return str(Path(bpy.path.abspath(props.dataset_path)).resolve())


def field_path(props) -> str:
    if props.field_path.strip():
        return str(Path(bpy.path.abspath(props.field_path)).resolve())
    return str(user_folder("fields") / f"{Path(dataset_path(props)).name or 'dataset'}.field.pt")


def mesh_path(props, name: str) -> str:
    folder = Path(bpy.path.abspath(props.mesh_folder)) if props.mesh_folder.strip() else user_folder("meshes")
    folder.mkdir(parents=True, exist_ok=True)
    return str((folder / f"{bpy.path.clean_name(name)}.ply").resolve())


def load_dataset_steps(path: str) -> Steps:
    """The worker reads the capture (Blender's Python lacks the image and COLMAP readers); returns its answer with
    "cameras" (Cameras at the image files' size) added."""
    loaded = yield "load_dataset", {"path": path}
    return {**loaded, "cameras": Cameras.from_dict(loaded)}


def import_dataset_steps(scene: bpy.types.Scene, path: str, with_images: bool = True) -> Steps:
    """Read the capture in the worker, then put its cameras under the NeRF-space Empty."""
    loaded = yield from load_dataset_steps(path)
    cameras = loaded["cameras"]
    import_cameras(scene, cameras, loaded["bbox"], path, with_images)
    scene.sa3d.prompt_view = cameras.names[0]
    return f"Imported {len(cameras)} cameras from {loaded['root']}"


def prepare_request(settings: WorkerSettings) -> tuple[str, dict]:
    return "prepare", {"segmenter": settings.segmenter, "sam_checkpoint": settings.sam_checkpoint}


def train_steps(
    dataset: str, checkpoint: str, seconds: float, settings: WorkerSettings, train_settings: dict | None = None
) -> Steps:
    """Train (train_settings: overrides of the worker's training settings), then prepare SAM on the new field."""
    request = {"dataset": dataset, "checkpoint": checkpoint, "seconds": float(seconds)}
    if train_settings:
        request["settings"] = train_settings
    trained = yield "train", request
    yield prepare_request(settings)
    test = trained.get("test_psnr")
    return (f"field trained in {trained['seconds']:.0f} s ({trained['iterations']} iterations, train PSNR "
            f"{trained['train_psnr'] or 0:.1f} dB" + (f", test {test:.1f} dB)" if test is not None else ")"))


def load_field_steps(dataset: str, checkpoint: str, settings: WorkerSettings) -> Steps:
    loaded = yield "load_field", {"checkpoint": checkpoint, "dataset": dataset}
    yield prepare_request(settings)
    return f"field loaded ({'x'.join(map(str, loaded['grid_shape']))} voxels)"


def segment_request(name: str, prompt: dict, mask_choice: int | None = None) -> tuple[str, dict]:
    params = {"name": name, "view": prompt["view"], "points": prompt["points"], "labels": prompt["labels"]}
    if prompt.get("box") is not None:
        params["box"] = prompt["box"]
    if mask_choice is not None and mask_choice >= 0:
        params["mask_choice"] = int(mask_choice)
    return "segment", params


def extract_and_import_steps(scene: bpy.types.Scene, name: str, out_path: str, settings: dict | None = None) -> Steps:
    """Extract the object's mesh into out_path (settings: the worker's extraction settings, e.g. level, or texture
    False for vertex colours only) and import it under NeRF space; the new object is the return value."""
    request = {"name": name, "out_path": out_path, "format": Path(out_path).suffix.lstrip(".") or "ply", **(settings or {})}
    extracted = yield "extract", request
    return import_mesh(scene, name, extracted["npz"], find_nerf_space(scene))
