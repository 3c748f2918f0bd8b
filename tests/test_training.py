"""Training the voxel field on a small rendered scene reaches a real held-out PSNR, and survives a checkpoint round trip."""

import time

import numpy as np
import pytest

from sa3d_blender.core.data.datasets import load_dataset
from sa3d_blender.core.errors import Cancelled
from sa3d_blender.core.field.field_checkpoint import load_field, save_field
from sa3d_blender.core.field.rendering import render_image
from sa3d_blender.core.field.training import TrainSettings, evaluate_views, evaluation_dataset, train_field

# a fixed iteration count keeps the result independent of how busy the machine is
SMALL = dict(iterations=200, num_voxels_start=32**3, num_voxels_end=72**3, occupancy_ramp=150, min_stage_iterations=50)


def _seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


@pytest.fixture(scope="module")
def trained(tiny_scene):
    dataset = load_dataset(tiny_scene)
    field, summary = train_field(dataset, TrainSettings(**SMALL))
    return dataset, field, summary


def test_tiny_scene_reaches_held_out_psnr(trained):
    dataset, field, summary = trained
    result = evaluate_views(field, dataset, dataset.test)
    assert result["psnr"] >= 27.0, result  # measured 30.2 dB
    # empty space was pruned and no fog keeps it occupied: measured 9 % (34 % without the opacity-entropy term)
    assert summary["occupied_fraction"] < 0.2, summary


def test_held_out_views_are_scored_smaller_when_rendering_them_would_take_too_long(trained):
    """train scores at the image files' size unless rendering every held-out view would take longer than the time
    allowed: then every view shrinks, by the probe's estimate, so that the whole command keeps its time."""
    dataset, field, _ = trained
    full = evaluation_dataset(dataset, field)  # 96-px views render in well under a second
    assert full.cameras.width[0] == dataset.cameras.width[0]
    pixels = int(np.sum(dataset.cameras.width[dataset.test] * dataset.cameras.height[dataset.test]))
    # the fastest of three: on a busy machine one run took over 4 times what the probe foresaw (ratio 1.0)
    taken = min(_seconds(lambda: evaluate_views(field, dataset, dataset.test)) for _ in range(3))
    quick = evaluation_dataset(dataset, field, seconds=taken / 4)  # a quarter of the time: about half the width
    ratio = quick.cameras.width[0] / dataset.cameras.width[0]
    assert 0.3 < ratio < 0.75, (ratio, taken, pixels)
    assert evaluate_views(field, quick, quick.test)["psnr"] > 20


def test_checkpoint_renders_the_same_image(trained, tmp_path):
    dataset, field, _ = trained
    path = save_field(tmp_path / "f.pt", field, dataset.cameras)
    loaded, cameras, _ = load_field(path)
    i = int(dataset.test[0])
    origins, dirs = cameras.pixel_rays(i)
    h, w = int(cameras.height[i]), int(cameras.width[i])
    before = render_image(field, origins, dirs, h, w)["rgb"]
    after = render_image(loaded, origins, dirs, h, w)["rgb"]
    assert np.abs(before - after).max() < 1e-5


def test_progress_reports_and_cancel_stops_training(tiny_scene):
    dataset = load_dataset(tiny_scene)
    seen = []

    def progress(fraction, loss, psnr):
        seen.append(fraction)
        if len(seen) == 3:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        train_field(dataset, TrainSettings(iterations=100, num_voxels_start=16**3, num_voxels_end=16**3), progress=progress)
    assert seen == sorted(seen) and 0 < seen[0] < seen[-1] <= 0.5
