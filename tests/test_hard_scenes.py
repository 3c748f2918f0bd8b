"""Hard scenes, reduced for tests: look-alike objects in contact (three identical bunnies, two identical cubes of one
grey) and thin or half-hidden objects (a chair on thin legs, a flat ring, a duck and a can behind a tall box). SA3D
from clicks on one view, with real MobileSAM, against the exact ground truth and against SAM with a perfect click on
every test view."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import cached_scene
from sa3d_blender.core.data.datasets import load_dataset
from sa3d_blender.core.evaluation import oracle_click_mask, reference_clicks, reference_view
from sa3d_blender.core.field.field_checkpoint import load_field
from sa3d_blender.core.field.training import TrainSettings
from sa3d_blender.core.metrics import mask_iou
from sa3d_blender.core.segment.sa3d import SceneSegmenter
from test_view_cache import cached_field

SETTINGS = TrainSettings(iterations=700, num_voxels_start=32**3, num_voxels_end=96**3)


def _scene(preset: str, segmenter) -> SceneSegmenter:
    torch.set_num_threads(2)
    scene = cached_scene(preset, 0, "--views", "36", "--resolution", "128")
    field, _, _ = load_field(cached_field(scene, preset, SETTINGS))
    return SceneSegmenter(field, load_dataset(scene), segmenter)


def _segment_all(scene: SceneSegmenter) -> dict[str, tuple[float, float]]:
    """Every object from 3 clicks on its largest training view, then (SA3D IoU, oracle-click SAM IoU) per object,
    averaged over the test views."""
    gt = scene.dataset.ground_truth
    for info in gt.objects:
        view = reference_view(scene, info.name)
        clicks = reference_clicks(gt.load_mask(view) == info.index)
        scene.segment(info.name, view, clicks, np.ones(len(clicks)))
    scores = {}
    for info in gt.objects:
        truths = [(int(i), gt.load_mask(int(i)) == info.index) for i in scene.dataset.test]
        sa3d = [mask_iou(scene.view_mask(info.name, i), truth) for i, truth in truths]
        oracle = [mask_iou(oracle_click_mask(scene, i, truth), truth) for i, truth in truths]
        scores[info.name] = (float(np.mean(sa3d)), float(np.mean(oracle)))
    return scores


@pytest.fixture(scope="module")
def lookalike(segmenter):
    return _scene("lookalike", segmenter)


def test_look_alikes_in_contact_each_come_out_on_their_own(lookalike):
    scores = _segment_all(lookalike)
    print({name: tuple(round(v, 3) for v in pair) for name, pair in scores.items()})
    sa3d = {name: pair[0] for name, pair in scores.items()}
    # measured on this reduced scene (36 views at 128 px, 96^3 grid): bunnies 0.877 / 0.890 / 0.815, cubes 0.931 /
    # 0.923 (oracle-click SAM: 0.783 / 0.836 / 0.703, 0.892 / 0.861); full preset at defaults: 0.884-0.960, mean 0.924
    assert min(sa3d.values()) >= 0.78, sa3d
    assert np.mean(list(sa3d.values())) >= 0.86, sa3d
    # SAM clicked perfectly on every test view takes the bunny it leans on too; the 3-D mask does not
    assert all(scores[f"bunny{k}"][0] > scores[f"bunny{k}"][1] for k in (1, 2, 3)), scores
    assert np.mean(list(sa3d.values())) > np.mean([pair[1] for pair in scores.values()]), scores


def test_the_first_mask_holds_the_positive_click_and_not_the_negative_one(lookalike):
    """A click on a bunny and one on the bunny it leans on: the mask segment() starts from covers the first and not the
    second, whatever SAM's scores say."""
    gt = lookalike.dataset.ground_truth
    index = gt.object("bunny2").index
    view = reference_view(lookalike, "bunny2")
    labels = gt.load_mask(view)
    neighbour = max((o for o in gt.objects if o.name.startswith("bunny") and o.index != index),
                    key=lambda o: int((labels == o.index).sum()))
    clicks = np.concatenate([reference_clicks(labels == index, 1), reference_clicks(labels == neighbour.index, 1)])
    mask = lookalike.first_mask(view, clicks, np.array([1, 0]))
    (x, y), (nx, ny) = clicks.astype(int)
    assert mask[y, x] and not mask[ny, nx]
    assert mask_iou(mask, labels == index) >= 0.8, mask_iou(mask, labels == index)


def test_thin_and_half_hidden_objects(segmenter):
    scores = _segment_all(_scene("thin", segmenter))
    print({name: tuple(round(v, 3) for v in pair) for name, pair in scores.items()})
    sa3d = {name: pair[0] for name, pair in scores.items()}
    # measured on this reduced scene: chair 0.965, ring 0.749 (its tube is ~3 px and one voxel thick here), pillar
    # 0.975, duck 0.858, can 0.937; oracle-click SAM on the chair 0.745 (it takes the seat or the back alone)
    assert min(sa3d.values()) >= 0.70, sa3d
    assert sa3d["chair"] >= 0.9 and sa3d["chair"] > scores["chair"][1], scores
    assert min(sa3d[name] for name in ("pillar", "duck", "can")) >= 0.82, sa3d
