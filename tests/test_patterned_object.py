"""A patterned object clicked 3 times: the demo preset's seed 2 (36 views at 320 px), whose ball is patched black and
white. SAM's single-mask output for the clicks is two white patches, none of its 3 candidates; SA3D must start from the
whole ball and lift the whole ball, with real MobileSAM and a real field, against the exact ground truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import cached_scene
from sa3d_blender.core.data.datasets import load_dataset
from sa3d_blender.core.evaluation import reference_clicks, reference_view
from sa3d_blender.core.field.field_checkpoint import load_field
from sa3d_blender.core.field.training import TrainSettings
from sa3d_blender.core.metrics import mask_iou
from sa3d_blender.core.segment.sa3d import SceneSegmenter
from test_view_cache import cached_field

SETTINGS = TrainSettings(iterations=700, num_voxels_start=32**3, num_voxels_end=96**3)


@pytest.fixture(scope="module")
def scene(segmenter) -> SceneSegmenter:
    torch.set_num_threads(2)
    data = cached_scene("demo", 2, "--views", "36", "--resolution", "320")
    field, _, _ = load_field(cached_field(data, "demo-seed2", SETTINGS))
    return SceneSegmenter(field, load_dataset(data), segmenter)


@pytest.fixture(scope="module")
def ball_prompt(scene):
    gt = scene.dataset.ground_truth
    view = reference_view(scene, "ball")
    truth = gt.load_mask(view) == gt.object("ball").index
    return view, reference_clicks(truth), truth


def test_sams_patchy_single_mask_gives_way_to_the_whole_ball(scene, ball_prompt):
    view, clicks, truth = ball_prompt
    labels = np.ones(len(clicks))
    single = scene.candidates(view, clicks, labels, multimask=False).masks[0]
    candidates = scene.candidates(view, clicks, labels).masks
    # the scene still shows what it is here for: the single output is part of the ball and none of the candidates
    assert mask_iou(single, truth) < 0.6 and max(mask_iou(single, c) for c in candidates) < 0.9
    first = scene.first_mask(view, clicks, labels)
    assert mask_iou(first, truth) >= 0.95, mask_iou(first, truth)


def test_the_whole_ball_comes_out_in_every_test_view(scene, ball_prompt):
    view, clicks, _ = ball_prompt
    scene.segment("ball", view, clicks, np.ones(len(clicks)))
    gt = scene.dataset.ground_truth
    truths = [gt.load_mask(int(i)) == gt.object("ball").index for i in scene.dataset.test]
    ious = [mask_iou(scene.view_mask("ball", int(i), size=truth.shape[::-1]), truth)
            for i, truth in zip(scene.dataset.test, truths)]
    # measured: 0.942 (0.689 in view 0004, where the can hides all but a sliver of the ball, 0.973-0.989 elsewhere);
    # starting from SAM's single mask (two white patches), 0.650 with 10 of 28 views falling back to the render
    assert np.mean(ious) >= 0.9 and np.median(ious) >= 0.95, ious
