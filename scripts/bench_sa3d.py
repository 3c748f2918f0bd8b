"""Benchmark: time to segment an object with SA3D over all training views, measured in one run.

- uncached: a fresh cache folder, so every view's SAM embedding and rendering weights are computed first;
- cached: one more object once the views are cached (what a user pays per click after the first);
- reference style: what the reference implementation does per view (render the field's RGB and depth densely,
  encode the render with SAM, render the mask), timed on a sample of views and scaled to all training views.

    python scripts/bench_sa3d.py --field out/demo/field.pt --dataset out/demo/scene
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from sa3d_blender.core.data.datasets import load_dataset  # noqa: E402
from sa3d_blender.core.devices import pick_device  # noqa: E402
from sa3d_blender.core.evaluation import reference_clicks, reference_view  # noqa: E402
from sa3d_blender.core.field.field_checkpoint import load_field  # noqa: E402
from sa3d_blender.core.field.rendering import render_image  # noqa: E402
from sa3d_blender.core.segment.sa3d import SceneSegmenter  # noqa: E402
from sa3d_blender.core.segment.segmenters import load_segmenter  # noqa: E402


def segment_object(scene: SceneSegmenter, name: str) -> float:
    view = reference_view(scene, name)
    clicks = reference_clicks(scene.dataset.ground_truth.object_mask(name, view))
    start = time.perf_counter()
    scene.segment(name, view, clicks, np.ones(len(clicks), dtype=np.int64))
    return time.perf_counter() - start


def reference_style_view_seconds(scene: SceneSegmenter, view: int) -> float:
    """Dense re-render of RGB + depth, a SAM encode of the render, and a dense re-render for the mask."""
    cameras, field = scene.cameras, scene.field
    origins, dirs = cameras.pixel_rays(view)
    h, w = int(cameras.height[view]), int(cameras.width[view])
    start = time.perf_counter()
    rendered = render_image(field, origins, dirs, h, w)
    scene.segmenter.embed(rendered["rgb"])
    render_image(field, origins, dirs, h, w)  # the mask pass walks the same samples again
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--field", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--device", default="cpu", choices=("auto", "cuda", "mps", "cpu"))
    parser.add_argument("--sample-views", type=int, default=4, help="views timed for the reference-style estimate")
    args = parser.parse_args()
    device = pick_device(args.device)
    dataset = load_dataset(args.dataset)
    if dataset.ground_truth is None or len(dataset.ground_truth.objects) < 2:
        raise SystemExit(f"{args.dataset}: needs ground truth with at least two objects (automatic clicks)")
    field, _, _ = load_field(args.field)
    field = field.to(device)
    segmenter = load_segmenter("mobile_sam", device=str(device))
    first, second = (o.name for o in dataset.ground_truth.objects[:2])
    with tempfile.TemporaryDirectory() as cache:
        scene = SceneSegmenter(field, dataset, segmenter, cache_folder=cache)
        start = time.perf_counter()
        scene.prepare()
        prepare_seconds = time.perf_counter() - start
        uncached = prepare_seconds + segment_object(scene, first)
        cached = segment_object(scene, second)
        sample = scene.views[: args.sample_views]
        per_view = statistics.median(reference_style_view_seconds(scene, v) for v in sample)
        reference = per_view * len(scene.views)
    n = len(scene.views)
    print(f"views: {n}   ({dataset.root}, device {device})")
    print(f"uncached (embeddings + weights + SA3D): {uncached:8.1f} s")
    print(f"cached, one more object:                {cached:8.1f} s")
    print(f"reference style (dense re-render + SAM encode per view, {per_view:.2f} s x {n}): {reference:8.1f} s")
    print(f"ratios: uncached/cached {uncached / cached:.1f}x, reference/cached {reference / cached:.1f}x")
    print(json.dumps({"views": n, "uncached_s": uncached, "prepare_s": prepare_seconds, "cached_s": cached,
                      "reference_style_s": reference, "reference_per_view_s": per_view}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
