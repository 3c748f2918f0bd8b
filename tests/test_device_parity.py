"""The pipeline on a GPU gives what it gives on the CPU: training, rendering, SA3D, meshing and the worker.

Run with `--device cuda` (or mps) on a machine that has one: `bash scripts/gpu_check.sh` prepares such a machine and
prints the command. With the default `--device cpu` these tests are skipped: the CPU path is what every other test runs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from sa3d_blender.core.data.datasets import load_dataset
from sa3d_blender.core.evaluation import reference_clicks, reference_view
from sa3d_blender.core.field.rendering import render_image
from sa3d_blender.core.field.training import TrainSettings, evaluate_views, train_field
from sa3d_blender.core.mesh.object_export import ExtractionSettings, extract_object
from sa3d_blender.core.metrics import mask_iou
from sa3d_blender.core.segment.sa3d import MASK_LEVEL, SceneSegmenter
from sa3d_blender.core.segment.segmenters import load_segmenter
from sa3d_blender.worker.client import WorkerClient
from test_training import SMALL


@pytest.fixture(scope="module")
def gpu(device) -> str:
    if device == "cpu":
        pytest.skip("device parity runs with --device cuda or mps (scripts/gpu_check.sh)")
    return device


@pytest.fixture(scope="module")
def fields(gpu, tiny_scene):
    dataset = load_dataset(tiny_scene)
    on_gpu, summary = train_field(dataset, TrainSettings(**SMALL), device=gpu)
    on_cpu, _ = train_field(dataset, TrainSettings(**SMALL), device="cpu")
    return dataset, on_gpu, on_cpu, summary


def test_training_on_the_device_reaches_the_cpu_psnr(fields, gpu):
    dataset, on_gpu, on_cpu, summary = fields
    assert on_gpu.density.device.type == gpu
    assert all(t.device.type == gpu for t in list(on_gpu.parameters()) + list(on_gpu.buffers()))
    gpu_psnr = evaluate_views(on_gpu, dataset, dataset.test, device=gpu)["psnr"]
    cpu_psnr = evaluate_views(on_cpu, dataset, dataset.test)["psnr"]
    print(f"held-out PSNR: {gpu} {gpu_psnr:.2f} dB, cpu {cpu_psnr:.2f} dB, {summary['iterations']} iterations")
    assert gpu_psnr >= 27.0 and abs(gpu_psnr - cpu_psnr) < 1.5


def test_one_field_renders_the_same_on_both_devices(fields, gpu):
    dataset, on_gpu, _, _ = fields
    view = int(dataset.test[0])
    origins, dirs = dataset.cameras.pixel_rays(view)
    h, w = int(dataset.cameras.height[view]), int(dataset.cameras.width[view])
    there = render_image(on_gpu, origins, dirs, h, w, device=gpu)
    here = render_image(on_gpu.to("cpu"), origins, dirs, h, w)
    on_gpu.to(gpu)
    assert np.abs(there["rgb"] - here["rgb"]).max() < 2e-3
    assert np.abs(there["acc"] - here["acc"]).max() < 2e-3


def test_sa3d_and_meshing_on_the_device(fields, gpu, tmp_path):
    dataset, on_gpu, _, _ = fields
    scene = SceneSegmenter(on_gpu, dataset, load_segmenter("mobile_sam", device=gpu), cache_folder=tmp_path)
    scene.prepare()
    gt = dataset.ground_truth
    index = gt.object("duck").index
    view = reference_view(scene, "duck")
    clicks = reference_clicks(gt.load_mask(view) == index)
    result = scene.segment("duck", view, clicks, np.ones(len(clicks)))
    ious = [mask_iou(scene.render_mask("duck", int(i)) > MASK_LEVEL, gt.load_mask(int(i)) == index) for i in dataset.test]
    print(f"duck on {gpu}: {len(result.used_views)} views, mean test IoU {np.mean(ious):.3f}")
    assert np.mean(ious) >= 0.85, ious
    mesh = extract_object(on_gpu, result.grid, ExtractionSettings())
    truth = trimesh.load(gt.object("duck").mesh_path, force="mesh").bounds
    centre = mesh.bounds.mean(axis=0)
    assert len(mesh.faces) > 100 and np.all(centre > truth[0]) and np.all(centre < truth[1])


def test_worker_runs_on_the_device(gpu, tmp_path):
    worker = WorkerClient(device=gpu, job_dir=tmp_path / "jobs")
    try:
        info = worker.call("ping")
        assert info["device"].startswith(gpu) and worker.ready_info["device"] == info["device"]
        assert torch.__version__.split("+")[0] == info["torch"].split("+")[0]
    finally:
        worker.stop()
