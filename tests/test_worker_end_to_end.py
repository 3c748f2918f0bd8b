"""Clicks to mesh through the real worker process: load a field, prepare SAM, segment the duck, render, extract."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from conftest import field_code_digest
from sa3d_blender.core.cache_folder import cache_root
from sa3d_blender.core.data.datasets import load_dataset
from sa3d_blender.core.evaluation import reference_clicks
from sa3d_blender.core.metrics import mask_iou
from sa3d_blender.core.segment.segmenters import default_checkpoint
from sa3d_blender.worker.client import WorkerClient, WorkerError

pytestmark = pytest.mark.slow

# a small, reproducible field (200 iterations were too few for a 0.5-opacity surface), ~1-2 min on 1 thread
TRAIN = {"iterations": 300, "settings": {"num_voxels_start": 32**3, "num_voxels_end": 96**3}}
OBJECT = "duck"


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    if not default_checkpoint("mobile_sam").is_file():
        pytest.skip("MobileSAM weights are not installed (scripts/setup_env.sh fetches them)")
    client = WorkerClient(device="cpu", job_dir=tmp_path_factory.mktemp("jobs"), extra_env={"SA3D_THREADS": "1"})
    yield client
    client.stop()


@pytest.fixture(scope="module")
def tiny_field(worker, tiny_scene) -> Path:
    """The tiny scene's field, trained by the worker once per scene and field-code version, then reused."""
    digest = hashlib.sha256(json.dumps(TRAIN, sort_keys=True).encode())
    digest.update(field_code_digest().encode())
    path = cache_root() / "test_fields" / f"worker-{tiny_scene.name}-{digest.hexdigest()[:12]}.pt"
    if not path.is_file():
        worker.call("train", dataset=str(tiny_scene), checkpoint=str(path), **TRAIN)
    return path


@pytest.fixture(scope="module")
def dataset(tiny_scene):
    return load_dataset(tiny_scene)


@pytest.fixture(scope="module")
def prompt(dataset) -> dict:
    """≤ 3 clicks inside the duck's ground-truth mask on the training view where it is largest."""
    gt = dataset.ground_truth
    index = gt.object(OBJECT).index
    areas = [np.count_nonzero(gt.load_mask(int(i)) == index) for i in dataset.train]
    view = int(dataset.train[int(np.argmax(areas))])
    clicks = reference_clicks(gt.load_mask(view) == index, max_clicks=3)
    return {"view": dataset.cameras.names[view], "points": clicks.tolist(), "labels": [1] * len(clicks),
            "truth": gt.load_mask(view) == index}


@pytest.fixture(scope="module")
def segmented(worker, tiny_scene, tiny_field, prompt) -> dict:
    worker.call("load_field", checkpoint=str(tiny_field), dataset=str(tiny_scene))
    prepared = worker.call("prepare")
    result = worker.call("segment", name=OBJECT, view=prompt["view"], points=prompt["points"], labels=prompt["labels"])
    return {"prepared": prepared, "result": result}


def test_candidates_hold_the_clicked_duck(worker, segmented, prompt):
    reply = worker.call("candidates", view=prompt["view"], points=prompt["points"], labels=prompt["labels"])
    masks = np.load(reply["masks"])
    assert masks.dtype == bool and masks.shape == (3, *prompt["truth"].shape) and len(reply["scores"]) == 3
    assert max(mask_iou(mask, prompt["truth"]) for mask in masks) >= 0.8
    chosen = np.load(reply["chosen"])  # what the click overlay shows: the mask Segment starts from
    assert chosen.shape == prompt["truth"].shape and mask_iou(chosen, prompt["truth"]) >= 0.8


def test_segment_uses_several_views_and_renders_the_duck_in_a_test_view(worker, segmented, prompt, dataset):
    result = segmented["result"]
    assert segmented["prepared"]["views"] == len(dataset.train)
    assert result["name"] == OBJECT and result["used_views"][0] == prompt["view"]
    assert len(result["used_views"]) >= len(dataset.train) // 2
    index = dataset.ground_truth.object(OBJECT).index
    test_view = int(dataset.test[0])
    rendered = np.load(worker.call("render_mask", name=OBJECT, view=dataset.cameras.names[test_view])["path"])
    assert rendered.shape == (dataset.cameras.height[test_view], dataset.cameras.width[test_view])
    # the mask `segment` writes, as the add-on's preview shows it: the 3-D mask's render outlined by SAM
    assert set(np.unique(rendered)) <= {0.0, 1.0}
    assert mask_iou(rendered > 0.5, dataset.ground_truth.load_mask(test_view) == index) >= 0.9


def test_extracted_mesh_sits_where_the_ground_truth_duck_is(worker, segmented, dataset, tmp_path):
    reply = worker.call("extract", name=OBJECT, out_path=str(tmp_path / "duck.ply"))
    assert Path(reply["path"]).is_file() and reply["path"] == str(tmp_path / "duck.ply")
    with np.load(reply["npz"]) as npz:
        vertices, faces, colors = npz["vertices"], npz["faces"], npz["colors"]
    assert vertices.dtype == np.float32 and faces.dtype == np.int32 and colors.dtype == np.uint8
    assert len(vertices) == reply["vertices"] == len(colors) and len(faces) == reply["faces"] > 100
    assert colors.shape[1] == 4 and faces.max() < len(vertices)
    truth = trimesh.load(dataset.ground_truth.object(OBJECT).mesh_path, force="mesh").bounds
    assert box_iou(np.stack([vertices.min(0), vertices.max(0)]), truth) >= 0.5
    # the photo texture beside the PLY (which keeps vertex colours) and uv per face corner for Blender
    assert reply["texture"] == str(tmp_path / "duck_texture.png") and reply["texture_seen"] > 0.5
    with np.load(reply["npz"]) as npz:
        assert npz["loop_uv"].shape == (3 * len(faces), 2) and str(npz["texture"]) == reply["texture"]


def test_a_glb_carries_the_photo_texture(worker, segmented, tmp_path):
    reply = worker.call("extract", name=OBJECT, out_path=str(tmp_path / "duck.glb"), format="glb", texture_size=256)
    scene = trimesh.load(reply["path"])
    mesh = next(iter(scene.geometry.values())) if isinstance(scene, trimesh.Scene) else scene
    image = mesh.visual.material.baseColorTexture
    assert image.size == (256, 256) and mesh.visual.uv.shape == (len(mesh.vertices), 2)
    duck = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert (duck[..., 0] > duck[..., 2] + 0.2 * 255).mean() > 0.2  # a yellow duck: red well above blue on its texels
    plain = worker.call("extract", name=OBJECT, out_path=str(tmp_path / "plain.glb"), format="glb", texture=False)
    assert "texture" not in plain and not (tmp_path / "plain_texture.png").exists()


def test_bad_requests_are_named_and_leave_the_worker_usable(worker, segmented, tmp_path):
    with pytest.raises(WorkerError, match="no segmented object named 'teapot'") as info:
        worker.call("render_mask", name="teapot", view="0000")
    assert info.value.error_type == "PromptError"
    with pytest.raises(WorkerError, match="ends in .obj but the format is 'glb'"):
        worker.call("extract", name=OBJECT, out_path=str(tmp_path / "duck.obj"), format="glb")
    with pytest.raises(WorkerError, match="unknown extraction setting.*smoothness"):
        worker.call("extract", name=OBJECT, out_path=str(tmp_path / "duck.ply"), smoothness=3)
    assert list(tmp_path.iterdir()) == []
    assert worker.call("ping")["pid"] == worker.ready_info["pid"]


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two axis-aligned boxes given as [2,3] min / max corners."""
    overlap = np.clip(np.minimum(a[1], b[1]) - np.maximum(a[0], b[0]), 0.0, None).prod()
    union = np.prod(a[1] - a[0]) + np.prod(b[1] - b[0]) - overlap
    return float(overlap / union)
