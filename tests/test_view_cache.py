"""The per-view cache on a real trained field: the sparse weights reproduce the renderer, and disk reuse is exact.

Also home of `tiny_field_path`, the small field the SA3D tests share: trained once (60 s) on the tiny scene and cached
under the project cache, keyed by the scene and the field code, so it is retrained whenever either changes.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import field_code_digest
from sa3d_blender.core.cache_folder import cache_root
from sa3d_blender.core.data.datasets import load_dataset
from sa3d_blender.core.field.field_checkpoint import load_field, save_field
from sa3d_blender.core.field.training import TrainSettings, train_field
from sa3d_blender.core.segment.segmenters import load_segmenter
from sa3d_blender.core.segment.view_cache import MIN_ENTRY, ViewCache, compute_view_weights

TRAIN_ITERATIONS = 400


def tiny_field_path(scene: Path) -> Path:
    return cached_field(scene, "tiny", TrainSettings(iterations=TRAIN_ITERATIONS, num_voxels_start=32768,
                                                     num_voxels_end=884736))


def cached_field(scene: Path, name: str, settings: TrainSettings) -> Path:
    """A field trained on `scene` with `settings`, cached under the project cache and keyed by the scene, the settings
    and the field code, so it is retrained whenever any of them changes."""
    digest = hashlib.sha256(f"{scene.name}:{settings}".encode())  # the name holds the generator hash; paths differ by machine
    digest.update(field_code_digest().encode())
    folder = cache_root() / "fields"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{digest.hexdigest()[:12]}.pt"
    with open(folder / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.is_file():
            torch.set_num_threads(2)
            dataset = load_dataset(scene)
            # a fixed iteration count, not a time budget: on a loaded machine 60 s can leave the field empty
            field, _ = train_field(dataset, settings)
            save_field(path, field, dataset.cameras, {"dataset": str(scene)})
    return path


@pytest.fixture(scope="module")
def field_and_dataset(tiny_scene):
    field, _, _ = load_field(tiny_field_path(tiny_scene))
    return field, load_dataset(tiny_scene)


def test_weights_render_the_fields_opacity_and_a_linear_function_exactly(field_and_dataset):
    field, dataset = field_and_dataset
    view = int(dataset.train[0])
    # the weights keep the inner region only: with the contracted shell emptied, they render the whole field
    field = copy.deepcopy(field)
    with torch.no_grad():
        field.density[~field.inner_vertices()] = -100.0
    field.update_occupancy()
    weights = compute_view_weights(field, dataset.cameras, view)
    assert weights.matrix.indices.dtype == np.int32 and weights.matrix.data.dtype == np.float32
    # Σ_samples w · Σ corners = the rendered opacity, minus samples below the renderer's weight floor and the entries
    # under MIN_ENTRY
    assert weights.matrix.data.min() >= MIN_ENTRY
    opacity = weights.render(np.ones(weights.matrix.shape[1], np.float32))
    assert np.abs(opacity - weights.opacity).max() < 0.02
    assert weights.opacity.max() > 0.99  # the view sees solid matter
    # trilinear interpolation of a linear function is exact: A @ x_vertex = Σ w x(sample) = opacity·(o + d·depth)_x
    x_vertex = field.to_world(field.vertex_positions())[:, 0].numpy()
    origins, dirs = dataset.cameras.pixel_rays(view)
    surface_x = (origins[:, 0] + dirs[:, 0] * weights.depth.reshape(-1)) * weights.opacity.reshape(-1)
    solid = weights.opacity.reshape(-1) > 0.99
    np.testing.assert_allclose(weights.render(x_vertex).reshape(-1)[solid], surface_x[solid], atol=0.03)
    # splat is the transpose of render
    rng = np.random.default_rng(0)
    v, g = rng.normal(size=weights.matrix.shape[1]), rng.normal(size=weights.shape)
    assert np.isclose(np.sum(weights.render(v) * g), np.dot(v, weights.splat(g)), rtol=1e-4)


def test_second_cache_reads_the_weights_from_disk(field_and_dataset, tmp_path):
    field, dataset = field_and_dataset
    segmenter = load_segmenter("mobile_sam", device="cpu")
    views = [int(i) for i in dataset.train[:2]]
    first = ViewCache(field, dataset.cameras, segmenter, dataset.load_image, tmp_path)
    messages = []
    first.prepare(views, lambda fraction, message: messages.append((fraction, message)))
    ready = [first.get(i) for i in views]
    assert messages[-1][0] == 1.0 and "MB" in messages[-1][1]
    files = sorted((tmp_path / "view_weights").glob("*.npz"))
    assert len(files) == 2 and not list((tmp_path / "view_weights").glob("*.tmp"))

    second = ViewCache(field, dataset.cameras, segmenter, dataset.load_image, tmp_path)
    stamps = [f.stat().st_mtime_ns for f in files]
    second.prepare(views)
    again = [second.get(i) for i in views]
    assert [f.stat().st_mtime_ns for f in files] == stamps  # read, not rewritten
    for a, b in zip(ready, again):
        assert (a.weights.matrix != b.weights.matrix).nnz == 0
        np.testing.assert_allclose(a.embedding.features, b.embedding.features, atol=2e-3)  # disk copy is float16

    # another field (one density value changed) must not reuse those files
    with torch.no_grad():
        field.density[0] += 1.0
    try:
        assert ViewCache(field, dataset.cameras, segmenter, dataset.load_image, tmp_path).weights_path(views[0]) \
            not in files
    finally:
        with torch.no_grad():
            field.density[0] -= 1.0


def test_memory_budget_keeps_only_recent_views_and_reads_the_rest_back(field_and_dataset, tmp_path):
    field, dataset = field_and_dataset
    segmenter = load_segmenter("mobile_sam", device="cpu")
    views = [int(i) for i in dataset.train[:4]]
    one_view_mb = ViewCache(field, dataset.cameras, segmenter, dataset.load_image, tmp_path).get(views[0]).weights.megabytes
    cache = ViewCache(field, dataset.cameras, segmenter, dataset.load_image, tmp_path, memory_mb=2.5 * one_view_mb)
    cache.prepare(views)
    assert cache.memory_in_use_mb() <= 2.5 * one_view_mb * 1.5  # views differ a little in size
    assert len(cache._views) < len(views)
    again = cache.get(views[0])  # evicted: read back from disk, same matrix
    fresh = ViewCache(field, dataset.cameras, segmenter, dataset.load_image, tmp_path).get(views[0])
    assert (again.weights.matrix != fresh.weights.matrix).nnz == 0


def test_weights_leave_out_the_contracted_shell(field_and_dataset):
    field, dataset = field_and_dataset
    weights = compute_view_weights(field, dataset.cameras, int(dataset.train[0]))
    assert field.space is not None and not field.inner_vertices().all()
    assert not np.isin(weights.matrix.indices, np.flatnonzero(~field.inner_vertices().numpy())).any()


def test_a_capture_larger_than_the_disk_budget_keeps_its_first_views_and_evicts_other_fields_first(
        field_and_dataset, tmp_path):
    """Four views where the disk budget holds about two: a rerun reads the first two back instead of rendering all
    four again (evicting its own oldest views, a capture over the budget never hit its cache); another field's
    files make room before any of this field's."""
    field, dataset = field_and_dataset
    segmenter = load_segmenter("mobile_sam", device="cpu")
    folder = tmp_path / "view_weights"
    folder.mkdir()
    stranger = folder / "otherfield_camera.npz"
    stranger.write_bytes(b"0" * 10_000)
    views = [int(i) for i in dataset.train[:4]]
    probe = ViewCache(field, dataset.cameras, segmenter, dataset.load_image, tmp_path / "probe")
    probe.weights(views[0])
    file_mb = probe.weights_path(views[0]).stat().st_size / 1e6  # compressed on disk
    cache = ViewCache(field, dataset.cameras, segmenter, dataset.load_image, tmp_path, disk_mb=2.5 * file_mb)
    cache.prepare(views)
    kept = [cache.weights_path(i).is_file() for i in views]
    assert not stranger.exists()  # the other field went first
    assert kept[:2] == [True, True] and sum(kept) == 2, kept
    stamps = {i: cache.weights_path(i).stat().st_mtime_ns for i in views[:2]}
    ViewCache(field, dataset.cameras, segmenter, dataset.load_image, tmp_path, disk_mb=2.5 * file_mb).prepare(views)
    assert {i: cache.weights_path(i).stat().st_mtime_ns for i in views[:2]} == stamps  # read back, not rendered
    assert sum(f.stat().st_size for f in folder.glob("*.npz")) / 1e6 <= 2.5 * file_mb
