"""Benchmark: what local refinement buys the meshes, against what it costs, measured in one run.

Every ground-truth object is segmented once (eval's automatic clicks); then for each refinement budget (0 = the scene
field) its mesh is scored: F-score, precision, recall at 1 % of the object's diagonal, connected parts, the textured
mesh's PSNR on the held-out views inside the object's mask, and the seconds refinement took.

    python scripts/bench_refine.py --field out/demo/field.pt --dataset out/demo/scene --seconds 0 30 60
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import trimesh  # noqa: E402

from sa3d_blender.core.data.datasets import load_dataset  # noqa: E402
from sa3d_blender.core.devices import pick_device  # noqa: E402
from sa3d_blender.core.evaluation import EvalSettings, appearance_psnr, segment_reference  # noqa: E402
from sa3d_blender.core.field.field_checkpoint import load_field  # noqa: E402
from sa3d_blender.core.field.local_refinement import RefineSettings  # noqa: E402
from sa3d_blender.core.mesh.object_export import extract_object, refine_object  # noqa: E402
from sa3d_blender.core.mesh.texture import bake_texture  # noqa: E402
from sa3d_blender.core.metrics import connected_parts, mesh_distances  # noqa: E402
from sa3d_blender.core.segment.sa3d import SceneSegmenter  # noqa: E402
from sa3d_blender.core.segment.segmenters import load_segmenter  # noqa: E402


def score(scene: SceneSegmenter, name: str, photos, seconds: float) -> dict:
    grid = scene.object_grid(name)
    start = time.perf_counter()
    local = None
    if seconds > 0:
        local = refine_object(scene.field, grid, scene.image_cameras, scene.views, scene.dataset.load_image,
                              RefineSettings(seconds=seconds))
    refine_seconds = time.perf_counter() - start
    mesh = extract_object(scene.field, grid, photos=photos, local=local, others=scene.other_objects(name),
                          silhouettes=scene.silhouettes(name, photos), visibility=scene.visibility(name))
    truth = trimesh.load(scene.dataset.ground_truth.object(name).mesh_path, force="mesh")
    distances = mesh_distances(mesh, truth, 0.01 * float(np.linalg.norm(truth.bounds[1] - truth.bounds[0])))
    appearance = appearance_psnr(scene.dataset, name, mesh, bake_texture(mesh, photos),
                                 list(map(int, scene.dataset.test)))
    return {"fscore": distances["fscore"], "precision": distances["precision"], "recall": distances["recall"],
            "parts": connected_parts(mesh), "psnr_texture": appearance.get("appearance_psnr_texture", float("nan")),
            "refine_seconds": refine_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--field", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--seconds", type=float, nargs="+", default=[0.0, 30.0, 60.0])
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()
    device = pick_device("auto")
    field, _, _ = load_field(args.field, device=device)
    dataset = load_dataset(args.dataset).at_pixel_budget(250_000)
    scene = SceneSegmenter(field, dataset, load_segmenter("mobile_sam", device="auto"), cache_folder=args.cache)
    names = [o.name for o in dataset.ground_truth.objects]
    for name in names:
        segment_reference(scene, name, EvalSettings(meshes=False))
    photos = list(scene.photos())
    rows = {}
    for s in args.seconds:
        rows[s] = {}
        for name in names:
            rows[s][name] = score(scene, name, photos, s)
            print(f"refine {s:g} s, {name}: {rows[s][name]}", flush=True)
    print(f"{'refine s':>8} {'object':>8} {'F@1%':>6} {'P':>6} {'R':>6} {'parts':>5} {'PSNR tex':>8} {'took s':>7}")
    for s, objects in rows.items():
        for name, r in objects.items():
            print(f"{s:8.0f} {name:>8} {r['fscore']:6.3f} {r['precision']:6.3f} {r['recall']:6.3f} {r['parts']:5d} "
                  f"{r['psnr_texture']:8.2f} {r['refine_seconds']:7.1f}")
        mean = {k: float(np.mean([r[k] for r in objects.values()])) for k in ("fscore", "psnr_texture", "refine_seconds")}
        print(f"{s:8.0f} {'mean':>8} {mean['fscore']:6.3f} {'':>6} {'':>6} {'':>5} {mean['psnr_texture']:8.2f} "
              f"{mean['refine_seconds']:7.1f}")
    print(json.dumps({str(s): objects for s, objects in rows.items()}))


if __name__ == "__main__":
    main()
