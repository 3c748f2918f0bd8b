"""The embedding cache with real MobileSAM: encode once, reuse from disk as float16, survive damaged files."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from sa3d_blender.core.segment.embedding_cache import EmbeddingCache
from sa3d_blender.core.segment.segmenters import ImageEmbedding

HEIGHT, WIDTH = 96, 144  # not square: the encoder pads, so sizes and click scaling differ per axis
ELLIPSE_CENTRE, ELLIPSE_RADII = (60.0, 50.0), (34.0, 22.0)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


class CountingSegmenter:
    """The real segmenter, counting how often the expensive encoder runs."""

    def __init__(self, inner):
        self.inner = inner
        self.model_id = inner.model_id
        self.encodes = 0

    def embed(self, image: np.ndarray) -> ImageEmbedding:
        self.encodes += 1
        return self.inner.embed(image)

    def predict(self, *args, **kwargs):
        return self.inner.predict(*args, **kwargs)


def ellipse_scene() -> tuple[np.ndarray, np.ndarray]:
    """(uint8 RGB image, mask): a green ellipse on a grey, diagonally striped ground."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH] + 0.5
    ground = 110 + 40 * np.sign(np.sin((rows + cols) / 4.0))
    image = np.repeat(ground[..., None], 3, axis=2)
    (cx, cy), (rx, ry) = ELLIPSE_CENTRE, ELLIPSE_RADII
    mask = ((cols - cx) / rx) ** 2 + ((rows - cy) / ry) ** 2 < 1.0
    image[mask] = (40, 170, 60)
    return image.astype(np.uint8), mask


@pytest.fixture(scope="module")
def scene():
    return ellipse_scene()


@pytest.fixture(scope="module")
def filled_cache(tmp_path_factory, segmenter, scene):
    """A cache folder holding the ellipse image's embedding, and the float32 embedding it was made from."""
    counting = CountingSegmenter(segmenter)
    cache = EmbeddingCache(tmp_path_factory.mktemp("embeddings"))
    fresh = cache.get_or_compute(counting, scene[0])
    assert counting.encodes == 1
    return cache.folder, fresh


def copy_of(folder, tmp_path) -> EmbeddingCache:
    target = tmp_path / "cache"
    shutil.copytree(folder, target)
    return EmbeddingCache(target)


def test_cached_embedding_is_read_back_without_encoding(filled_cache, segmenter, scene, tmp_path):
    folder, fresh = filled_cache
    counting = CountingSegmenter(segmenter)
    cached = copy_of(folder, tmp_path).get_or_compute(counting, scene[0])
    assert counting.encodes == 0
    assert cached.features.dtype == np.float16 and cached.features.shape == fresh.features.shape
    assert cached.original_size == (HEIGHT, WIDTH) and cached.input_size == (683, 1024)
    assert cached.model_id == segmenter.model_id
    assert [p.suffix for p in folder.iterdir()] == [".npz"]  # no temporary file left behind


def test_float16_cache_gives_the_same_masks_as_float32(filled_cache, segmenter, scene):
    folder, fresh = filled_cache
    cached = EmbeddingCache(folder).get_or_compute(segmenter, scene[0])
    click, label = np.array([ELLIPSE_CENTRE]), np.array([1])
    fresh_result = segmenter.predict(fresh, click, label)
    cached_result = segmenter.predict(cached, click, label)
    assert all(iou(a, b) >= 0.98 for a, b in zip(fresh_result.masks, cached_result.masks))
    assert max(iou(mask, scene[1]) for mask in cached_result.masks) >= 0.9


def test_float_and_uint8_forms_of_an_image_share_an_entry(scene, tmp_path):
    cache = EmbeddingCache(tmp_path)
    image = scene[0]
    assert cache.path_for("mobile_sam:abc", image) == cache.path_for("mobile_sam:abc", image / np.float32(255))
    assert cache.path_for("mobile_sam:abc", image) != cache.path_for("vit_b:abc", image)
    assert cache.path_for("mobile_sam:abc", image) != cache.path_for("mobile_sam:abc", image[:, ::-1])


def test_damaged_cache_file_is_recomputed_with_a_warning(filled_cache, segmenter, scene, tmp_path, caplog):
    folder, _ = filled_cache
    cache = copy_of(folder, tmp_path)
    (path,) = cache.folder.glob("*.npz")
    path.write_bytes(path.read_bytes()[:5000])
    counting = CountingSegmenter(segmenter)
    with caplog.at_level(logging.WARNING, logger="sa3d_blender.core.segment.embedding_cache"):
        emb = cache.get_or_compute(counting, scene[0])
    assert counting.encodes == 1
    assert f"embedding cache file {path} is unreadable" in caplog.text
    assert emb.features.shape == (256, 64, 64)
    assert EmbeddingCache(cache.folder).get_or_compute(counting, scene[0]).features.dtype == np.float16
    assert counting.encodes == 1  # the rewritten file is good


def test_embed_views_encodes_only_missing_views_and_reports_progress(filled_cache, segmenter, scene, tmp_path):
    folder, _ = filled_cache
    cache = copy_of(folder, tmp_path)
    image, mask = scene
    views = [image, image[:, ::-1]]  # the second view is new: the mirrored scene
    counting = CountingSegmenter(segmenter)
    reports: list[tuple[float, str]] = []
    embeddings = cache.embed_views(counting, lambda i: views[i], progress=lambda f, m: reports.append((f, m)), count=2)
    assert counting.encodes == 1
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions) and fractions[0] == 0.5 and fractions[-1] == 1.0
    assert reports[0][1].startswith("view 2/2: encoding image")
    assert "1 encoded, 1 from the cache" in reports[-1][1]
    mirrored_click = np.array([[WIDTH - ELLIPSE_CENTRE[0], ELLIPSE_CENTRE[1]]])
    result = segmenter.predict(embeddings[1], mirrored_click, np.array([1]))
    assert max(iou(m, mask[:, ::-1]) for m in result.masks) >= 0.9
    assert len(list(cache.folder.glob("*.npz"))) == 2


def test_loader_without_count_is_refused(tmp_path, segmenter):
    with pytest.raises(ValueError, match="needs count="):
        EmbeddingCache(tmp_path).embed_views(segmenter, lambda i: None)
