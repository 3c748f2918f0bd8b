"""A scene with surroundings (walls and floor far beyond the objects, no aabb, cameras near and far): the field covers
the world, and SA3D segments the objects standing on the floor from clicks on one view, with real MobileSAM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sa3d_blender.core.data.datasets import load_dataset
from sa3d_blender.core.evaluation import reference_clicks, reference_view
from sa3d_blender.core.field.field_checkpoint import load_field
from sa3d_blender.core.field.training import TrainSettings, evaluate_views
from sa3d_blender.core.metrics import mask_iou
from sa3d_blender.core.segment.sa3d import MASK_LEVEL, SceneSegmenter
from test_view_cache import cached_field

SETTINGS = TrainSettings(iterations=700, num_voxels_start=32**3, num_voxels_end=96**3)


@pytest.fixture(scope="module")
def room(room_scene):
    torch.set_num_threads(2)
    field, _, _ = load_field(cached_field(room_scene, "room", SETTINGS))
    return field, load_dataset(room_scene)


def test_room_field_covers_the_walls_and_reaches_a_held_out_psnr(room):
    field, dataset = room
    assert dataset.scene_type == "unbounded" and field.space is not None
    psnr = evaluate_views(field, dataset, dataset.test)["psnr"]
    assert psnr >= 24.0, psnr  # measured 25.9 dB (700 iterations, 7 % of the grid occupied)


def _iou(scene: SceneSegmenter, name: str) -> float:
    gt = scene.dataset.ground_truth
    index = gt.object(name).index
    return float(np.mean([mask_iou(scene.render_mask(name, int(i)) > MASK_LEVEL, gt.load_mask(int(i)) == index)
                          for i in scene.dataset.test]))


def test_objects_on_the_floor_segment_from_clicks_on_one_view(room, segmenter):
    """All five in one run, scored once all are segmented (as `segment --prompts` writes them): the ball lying in the
    tray is segmented after the tray and still comes out whole, and then leaves the tray's mask."""
    field, dataset = room
    scene = SceneSegmenter(field, dataset, segmenter)
    gt = dataset.ground_truth
    names = ("duck", "box", "can", "tray", "ball")
    for name in names:
        index = gt.object(name).index
        view = reference_view(scene, name)
        clicks = reference_clicks(gt.load_mask(view) == index)
        scene.segment(name, view, clicks, np.ones(len(clicks)))
    ious = {name: _iou(scene, name) for name in names}
    print(ious)
    # measured on this reduced room (30 views at 112 px, 96^3 grid): 0.94, 0.96, 0.93, tray 0.63, ball 0.30 (the ball
    # is ~8 px across here; on the full room preset at defaults: tray 0.882, ball 0.911)
    assert min(ious[n] for n in ("duck", "box", "can")) >= 0.88, ious
    assert ious["tray"] >= 0.55 and ious["ball"] >= 0.2, ious
    # the tray's view masks count the ball's light as the tray's and then leave the ball its own mask: the ball's
    # fuzzy rim, which the tray's 3-D mask gave up, no longer leaves a ring of the tray out
    trays = {int(i): scene.view_mask("tray", int(i), refine=False) for i in dataset.test}
    tray = [mask_iou(mask, gt.load_mask(i) == gt.object("tray").index) for i, mask in trays.items()]
    print("tray view masks", np.mean(tray))
    assert not any((mask & scene.view_mask("ball", i, refine=False)).any() for i, mask in trays.items())
    assert np.mean(tray) >= ious["tray"] + 0.01, (tray, ious["tray"])
