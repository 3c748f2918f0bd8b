"""Evaluation: automatic clicks, and one object scored end to end (SA3D, single-view baseline, mesh)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from sa3d_blender.core.data.datasets import load_dataset
from sa3d_blender.core.errors import DatasetError
from sa3d_blender.core.evaluation import (EvalSettings, evaluate_object, format_table, reference_clicks,
                                         reference_view, scored_views)
from sa3d_blender.core.field.field_checkpoint import load_field
from sa3d_blender.core.segment.sa3d import SceneSegmenter
from sa3d_blender.core.segment.segmenters import load_segmenter
from test_view_cache import tiny_field_path


def test_reference_clicks_start_deepest_inside_and_spread_out():
    mask = np.zeros((40, 60), bool)
    mask[10:30, 5:55] = True  # a 20 x 50 bar: deepest points along its middle row
    clicks = reference_clicks(mask, 3)
    assert len(clicks) == 3
    cols, rows = clicks[:, 0].astype(int), clicks[:, 1].astype(int)
    assert mask[rows, cols].all()
    assert rows[0] in (19, 20)  # on the distance-transform ridge (the middle rows)
    gaps = [np.hypot(*(clicks[a] - clicks[b])) for a in range(3) for b in range(a)]
    assert min(gaps) >= 15  # spread along the 50 px bar, not bunched
    with pytest.raises(ValueError, match="empty"):
        reference_clicks(np.zeros((5, 5), bool))


def test_table_lists_every_object_and_the_mean():
    counts = {"clicked": 1, "used": 14, "reprompted": 2, "fallback": 1, "skipped": 0}
    summary = {"objects": {"duck": {"iou": 0.95, "accuracy": 0.99, "rendered_iou": 0.94, "baseline_iou": 0.9,
                                    "oracle_iou": 0.93,
                                    "view_counts": counts, "fscore": 0.9, "fscore_fine": 0.6, "parts": 3,
                                    "truth_parts": 1, "segment_seconds": 9.5}},
               "mean": {"iou": 0.95}}
    lines = format_table(summary).splitlines()
    assert lines[0].split()[:3] == ["object", "IoU", "Acc"] and "F@1%" in lines[0] and "GT parts" in lines[0]
    assert "SAM-oracle" in lines[0] and "u/r/f/s" in lines[0]
    cells = lines[2].split()
    assert cells[:8] == ["duck", "0.950", "0.990", "0.940", "0.900", "0.930", "14/2/1/0", "0.900"]
    assert cells[12:17] == ["3", "1", "-", "-", "9.500"]
    assert lines[3].split()[:3] == ["mean", "0.950", "-"]


def test_can_scores_on_held_out_views(tiny_scene):
    torch.set_num_threads(2)
    field, _, _ = load_field(tiny_field_path(tiny_scene))
    scene = SceneSegmenter(field, load_dataset(tiny_scene), load_segmenter("mobile_sam", device="cpu"))
    result = evaluate_object(scene, "can", EvalSettings())
    assert set(result["per_view"]) == {scene.cameras.names[int(i)] for i in scene.dataset.test}
    assert result["iou"] >= 0.8 and result["accuracy"] >= 0.98, result
    assert 0.0 <= result["baseline_iou"] <= 1.0
    # honest thresholds: 1 % of the can's own diagonal is 4 mm on this 96-px scene's grid; measured F 0.26,
    # 0.5 %: 0.07, normals 0.90, one part, Chamfer 9 mm
    assert result["fscore"] >= 0.15 and result["fscore_fine"] <= result["fscore"] and result["chamfer"] < 0.05, result
    assert 0.0 < result["precision"] <= 1.0 and 0.0 < result["recall"] <= 1.0
    assert result["normal_consistency"] >= 0.75 and result["parts"] >= 1 and result["truth_parts"] >= 1, result


def annotate_by_hand(scene_dir: Path, name: str, views: list[int], scale: int = 2) -> dict[int, np.ndarray]:
    """Rewrite scene_dir's ground truth as a capture annotated by hand: object `name` only, a binary 0/255 mask of its
    own on `views` at `scale` times the images' size, no index masks, no mesh. Returns the true masks by view."""
    dataset = load_dataset(scene_dir)
    gt = dataset.ground_truth
    truths, files = {}, {}
    (scene_dir / "annotations").mkdir()
    for i in views:
        truths[i] = gt.load_mask(i) == gt.object(name).index
        big = np.kron(truths[i], np.ones((scale, scale), bool)).astype(np.uint8) * 255
        files[dataset.cameras.names[i]] = f"annotations/{name}_{dataset.cameras.names[i]}.png"
        Image.fromarray(big).save(scene_dir / files[dataset.cameras.names[i]])
    (scene_dir / "ground_truth.json").write_text(json.dumps({"version": 1, "objects": [{"name": name, "masks": files}]}))
    return truths


def test_a_capture_annotated_on_a_few_views_without_meshes_is_scored_on_its_masked_views(tiny_scene, tmp_path):
    """What a real capture with ground truth looks like: binary masks of one object on a few views, at the photos'
    full size, no mesh. The clicks go on the largest masked training view; IoU and appearance on the masked held-out
    views only; no mesh score is made up."""
    torch.set_num_threads(2)
    scene_dir = tmp_path / "capture"
    shutil.copytree(tiny_scene, scene_dir)
    full = load_dataset(scene_dir)
    train_views, test_views = [int(i) for i in full.train[::4][:3]], [int(i) for i in full.test[:2]]
    truths = annotate_by_hand(scene_dir, "can", train_views + test_views)
    dataset = load_dataset(scene_dir)
    for i, truth in truths.items():  # a 2x mask comes back at the image's size, pixel for pixel
        np.testing.assert_array_equal(dataset.ground_truth.object_mask("can", i), truth)
    assert dataset.ground_truth.object_mask("can", int(full.test[2])) is None
    assert scored_views(dataset, "can", train_views[0]) == (test_views, "test")

    field, _, _ = load_field(tiny_field_path(tiny_scene))
    scene = SceneSegmenter(field, dataset, load_segmenter("mobile_sam", device="cpu"), cache_folder=tmp_path / "cache")
    result = evaluate_object(scene, "can", EvalSettings())
    areas = {i: truths[i].sum() for i in train_views}
    assert result["reference_view"] == dataset.cameras.names[max(areas, key=areas.get)]
    assert set(result["per_view"]) == {dataset.cameras.names[i] for i in test_views} and result["scored_on"] == "test"
    assert result["iou"] >= 0.8, result
    assert "fscore" not in result and "truth_parts" not in result and result["parts"] >= 1
    assert result["appearance_psnr_texture"] >= 15.0, result


def test_without_masked_held_out_views_the_other_masked_views_are_scored(tiny_scene, tmp_path):
    scene_dir = tmp_path / "capture"
    shutil.copytree(tiny_scene, scene_dir)
    train = [int(i) for i in load_dataset(scene_dir).train[:3]]
    annotate_by_hand(scene_dir, "can", train, scale=1)
    dataset = load_dataset(scene_dir)
    assert scored_views(dataset, "can", train[1]) == ([train[0], train[2]], "train")
    views = SimpleNamespace(dataset=dataset, views=[int(i) for i in dataset.train])  # what reference_view reads
    for view in train:  # the object annotated as absent everywhere: no click can be placed
        empty = np.zeros((int(dataset.cameras.height[view]), int(dataset.cameras.width[view])), np.uint8)
        Image.fromarray(empty).save(scene_dir / f"annotations/can_{dataset.cameras.names[view]}.png")
    with pytest.raises(DatasetError, match="ground_truth.json: object 'can' is empty in every masked training view"):
        reference_view(views, "can")
