"""The worker's methods (load a dataset, train, segment, extract ...) over the core, with the state kept between requests.

Each method takes `progress(fraction, stage, message)` and JSON-able params and returns a JSON-able dict; arrays are
written to the job folder and returned as paths.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
import torch

from ..core.atomic_files import atomic_write
from ..core.data.datasets import Dataset, load_dataset
from ..core.devices import pick_device
from ..core.errors import CheckpointError, SA3DError
from ..core.field import field_checkpoint
from ..core.field.local_refinement import RefineSettings
from ..core.field.training import TrainSettings, evaluate_views, evaluation_dataset, train_field
from ..core.field.voxel_field import FieldConfig
from ..core.mesh.mesh_extraction import MESH_FORMATS, ExtractionSettings
from ..core.mesh.object_export import export_object, refine_object, texture_path
from ..core.mesh.texture import TextureSettings
from ..core.segment.sa3d import SA3DSettings, SceneSegmenter
from ..core.segment.segmenters import Segmenter, load_segmenter
from ..core.segment.self_prompting import PromptSettings

log = logging.getLogger(__name__)

Progress = Callable[..., None]  # progress(fraction in [0,1], stage, message=""); raises Cancelled when cancelled

METHODS = ("ping", "load_dataset", "train", "load_field", "prepare", "candidates", "segment", "render_mask", "extract",
           "release")
UNSAFE_FILE_CHARS = re.compile(r"[^\w.-]")
TRAIN_SHARE = 0.9  # of a train job's progress bar; the rest is the test-view evaluation


def _finite_or_none(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def settings_from(cls, values: dict, what: str):
    """Build dataclass `cls` from a JSON dict, with a clear SA3DError for unknown names or invalid values."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SA3DError(f"unknown {what} setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise SA3DError(f"invalid {what} settings: {exc}") from None


def sa3d_settings(values: dict) -> SA3DSettings:
    values = dict(values)
    if "prompts" in values:
        values["prompts"] = settings_from(PromptSettings, values["prompts"], "self-prompting")
    return settings_from(SA3DSettings, values, "SA3D")


def train_settings(seconds: float, iterations: int | None, values: dict) -> TrainSettings:
    values = {"seconds": float(seconds), "iterations": None if iterations is None else int(iterations), **values}
    if "field" in values:
        values["field"] = settings_from(FieldConfig, values["field"], "field")
    return settings_from(TrainSettings, values, "training")


def mesh_path(out_path: str | Path, file_format: str) -> Path:
    """out_path, given the format's suffix when it has none; a suffix that contradicts `format` is an error."""
    path = Path(out_path).expanduser()
    suffix = "." + file_format.lower().lstrip(".")
    if suffix not in MESH_FORMATS:
        raise SA3DError(f"{path}: unsupported mesh format {file_format!r}; use one of {', '.join(MESH_FORMATS)}")
    if not path.suffix:
        return path.with_suffix(suffix)
    if path.suffix.lower() != suffix:
        raise SA3DError(f"{path}: the file name ends in {path.suffix} but the format is {file_format!r}")
    return path


class WorkerSession:
    """What one worker process holds between requests: the dataset, the field, the SAM model and the SA3D objects."""

    def __init__(self, device: str = "auto", job_dir: Path | None = None):
        self.device = pick_device(device)
        self.job_dir = Path(job_dir) if job_dir is not None else Path(tempfile.mkdtemp(prefix="sa3d_worker_"))
        self.job_dir.mkdir(parents=True, exist_ok=True)
        self._files_written = 0
        self.dataset: Dataset | None = None
        self._dataset_path: Path | None = None
        self.field = None  # VoxelField once trained or loaded
        self._segmenters: dict[tuple[str, str | None], Segmenter] = {}
        self.scene: SceneSegmenter | None = None  # once prepared; holds the segmented objects

    def call(self, method: str, params: dict, progress: Progress) -> dict:
        if method not in METHODS:
            raise SA3DError(f"unknown worker method {method!r}; the worker knows {', '.join(METHODS)}")
        return getattr(self, method)(progress, **params)

    # --- helpers ----------------------------------------------------------------------------------------------------
    def _load_dataset(self, path: str | Path, reload: bool = False) -> Dataset:
        path = Path(path).expanduser().absolute()
        if reload or self.dataset is None or path != self._dataset_path:
            self.dataset, self._dataset_path = load_dataset(path), path
            self.scene = None
        return self.dataset

    def _write_file(self, name: str, write: Callable[[BinaryIO], None]) -> Path:
        """A new file in the job folder, written under a temporary name first so the client never sees half of it."""
        self._files_written += 1
        # object names come from the user: keep them from reaching outside the job folder
        path = self.job_dir / f"{os.getpid()}-{self._files_written:05d}-{UNSAFE_FILE_CHARS.sub('_', name)}"
        with atomic_write(path) as f:
            write(f)
        return path

    def _scene_segmenter(self) -> SceneSegmenter:
        if self.scene is None:
            raise SA3DError("no scene is prepared for segmentation: call prepare (after train or load_field) first")
        return self.scene

    def _segmenter(self, kind: str, checkpoint: str | None) -> Segmenter:
        key = (kind, None if checkpoint is None else str(Path(checkpoint).expanduser()))
        if key not in self._segmenters:
            self._segmenters[key] = load_segmenter(kind, key[1], str(self.device))
        return self._segmenters[key]

    def _save_array(self, name: str, array: np.ndarray) -> Path:
        return self._write_file(f"{name}.npy", lambda f: np.save(f, array, allow_pickle=False))

    # --- methods ----------------------------------------------------------------------------------------------------
    def ping(self, progress: Progress) -> dict:
        return {"pid": os.getpid(), "python": sys.executable, "torch": torch.__version__, "device": str(self.device)}

    def load_dataset(self, progress: Progress, path: str) -> dict:
        """The capture's cameras at the image files' size (Cameras.to_dict), split, box and ground-truth objects."""
        ds = self._load_dataset(path, reload=True)
        return {
            "root": str(ds.root), "format": ds.format, "scene_type": ds.scene_type, **ds.cameras.to_dict(),
            "train": ds.train.tolist(), "test": ds.test.tolist(), "bbox": ds.bbox.tolist(),
            "objects": [o.name for o in ds.ground_truth.objects] if ds.ground_truth else [],
        }

    def train(self, progress: Progress, dataset: str, checkpoint: str, seconds: float = 240.0,
              iterations: int | None = None, settings: dict | None = None) -> dict:
        """Train a field and write it to `checkpoint` at the very end; `settings` overrides other TrainSettings fields."""
        ds = self._load_dataset(dataset)
        settings = train_settings(seconds, iterations, settings or {})
        start = time.perf_counter()
        progress(0.0, "train", f"loading {len(ds.train)} training views")

        def report(fraction: float, loss: float, train_psnr: float) -> None:
            progress(TRAIN_SHARE * fraction, "train", f"PSNR {train_psnr:.1f} dB")

        work = ds.at_pixel_budget()
        field, summary = train_field(work, settings, self.device, report)
        test_psnr = None
        if len(ds.test):
            progress(TRAIN_SHARE, "evaluate", f"rendering {len(ds.test)} test views")
            scored = evaluation_dataset(ds, field, self.device)
            test_psnr = _finite_or_none(evaluate_views(field, scored, scored.test, self.device)["psnr"])
        # the checkpoint is written last (and atomically): a cancelled or failed train leaves none behind
        progress(1.0, "save", "saving the field")
        summary = {**summary, "test_psnr": test_psnr, "dataset": str(ds.root)}
        path = field_checkpoint.save_field(Path(checkpoint).expanduser(), field, work.cameras, extra=summary)
        self.field, self.scene = field, None
        return {"checkpoint": str(path), "train_psnr": _finite_or_none(summary["train_psnr"]), "test_psnr": test_psnr,
                "seconds": time.perf_counter() - start, "iterations": summary["iterations"]}

    def load_field(self, progress: Progress, checkpoint: str, dataset: str) -> dict:
        ds = self._load_dataset(dataset)
        path = Path(checkpoint).expanduser()
        field, cameras, _ = field_checkpoint.load_field(path, self.device)
        if list(cameras.names) != list(ds.cameras.names):
            raise CheckpointError(path, f"the field was trained on {len(cameras)} views that are not the {len(ds.cameras)} "
                                        f"views of dataset {ds.root}: load it with the dataset it was trained on")
        self.field, self.scene = field, None
        log.info("field %s loaded for %s", path, ds.root)
        return {"grid_shape": list(field.shape), "bbox": field.bbox.cpu().numpy().tolist()}

    def prepare(self, progress: Progress, segmenter: str = "mobile_sam", sam_checkpoint: str | None = None) -> dict:
        """Load SAM and compute (or load from the cache) every training view's embedding and rendering weights."""
        if self.field is None or self.dataset is None:
            raise SA3DError("no radiance field is loaded: train or load_field first")
        start = time.perf_counter()
        progress(0.0, "prepare", f"loading {segmenter}")
        model = self._segmenter(segmenter, sam_checkpoint)
        if self.scene is None or self.scene.segmenter is not model:
            self.scene = SceneSegmenter(self.field, self.dataset.at_pixel_budget(), model)
        self.scene.prepare(lambda fraction, message: progress(fraction, "prepare", message))
        return {"views": len(self.scene.views), "seconds": time.perf_counter() - start}

    def candidates(self, progress: Progress, view: str | int, points: list, labels: list, box: list | None = None) -> dict:
        """SAM's 3 candidates and the mask Segment will start from (what the click overlay shows)."""
        scene = self._scene_segmenter()
        result = scene.candidates(view, points, labels, box)
        chosen = scene.first_mask(view, points, labels, box)
        return {"masks": str(self._save_array("candidates", result.masks)), "scores": result.scores.tolist(),
                "chosen": str(self._save_array("chosen", chosen))}

    def segment(self, progress: Progress, name: str, view: str | int, points: list, labels: list, box: list | None = None,
                mask_choice: int | None = None, settings: dict | None = None) -> dict:
        scene = self._scene_segmenter()
        result = scene.segment(name, view, points, labels, box, mask_choice, sa3d_settings(settings or {}),
                               lambda fraction, message: progress(fraction, "segment", message))
        # the objects this one lies in gave it up: meshes already extracted from them are out of date
        return {"name": result.name, "first_view": result.first_view, "used_views": result.used_views,
                "skipped_views": result.skipped_views, "view_ious": result.view_ious, "seconds": result.seconds,
                "view_status": result.view_status, "containers": scene.mask_grid.containers(name)}

    def render_mask(self, progress: Progress, name: str, view: str | int) -> dict:
        """The object's mask in `view` (1 inside, 0 outside, float32) at the size of the view's image file: the mask
        `segment` writes (SceneSegmenter.view_mask), so that the add-on's preview shows what the user will get."""
        scene = self._scene_segmenter()
        i = scene.view_index(view)
        mask = scene.view_mask(name, i, size=(scene.full_cameras.width[i], scene.full_cameras.height[i]))
        return {"path": str(self._save_array(f"mask-{name}", mask.astype(np.float32)))}

    def extract(self, progress: Progress, name: str, out_path: str, format: str = "ply", texture: bool = True,
                texture_size: int = 1024, refine_seconds: float = 0.0, **settings) -> dict:
        """Mesh object `name` into out_path, and an .npz of vertices, faces, RGBA colours (and with `texture`, uv per
        face corner and the texture PNG's path) in the job folder for Blender. With `texture` the mesh gets a photo
        texture (<out>_texture.png beside it): GLB and OBJ carry it, PLY keeps vertex colours. With refine_seconds > 0
        a finer field is trained over the object's box for that long first and meshed instead of the scene field."""
        if not 16 <= int(texture_size) <= 8192:
            raise SA3DError(f"texture_size {texture_size} is outside 16..8192 texels")
        scene = self._scene_segmenter()
        grid = scene.object_grid(name)  # PromptError naming the segmented objects when there is no such object
        path = mesh_path(out_path, format)
        extraction = settings_from(ExtractionSettings, settings, "extraction")
        progress(0.0, "extract", f"meshing and texturing {name}" if texture else f"meshing {name}")
        local = None
        if float(refine_seconds) > 0:
            progress(0.0, "extract", f"refining {name} for {float(refine_seconds):g} s")
            local = refine_object(self.field, grid, scene.image_cameras, scene.views, scene.dataset.load_image,
                                  RefineSettings(seconds=float(refine_seconds)))
        photos = list(scene.photos())
        mesh, textured = export_object(self.field, grid, path, extraction, photos,
                                       TextureSettings(size=int(texture_size)) if texture else None, local,
                                       scene.other_objects(name), scene.silhouettes(name, photos),
                                       scene.visibility(name))
        arrays = {"vertices": np.asarray(mesh.vertices, dtype=np.float32), "faces": np.asarray(mesh.faces, dtype=np.int32),
                  "colors": np.asarray(mesh.visual.vertex_colors, dtype=np.uint8)}
        reply = {}
        if textured is not None:
            png = texture_path(path)
            arrays.update(loop_uv=textured.loop_uv.astype(np.float32), texture=np.array(str(png)))
            reply = {"texture": str(png), "texture_seen": textured.seen_fraction}
        npz = self._write_file(f"mesh-{name}.npz", lambda f: np.savez(f, **arrays))
        return {"path": str(path), "vertices": len(mesh.vertices), "faces": len(mesh.faces), "npz": str(npz), **reply}

    def release(self, progress: Progress | None = None) -> dict:
        """Drop the SAM models and SA3D caches (the dataset and field stay loaded) and give memory back."""
        self.scene = None
        self._segmenters.clear()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return {}
