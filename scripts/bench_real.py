"""Benchmark on real captures: memory and speed against image size and view count, and PSNR against time.

1. Scaling: training on the fox phone capture (1080x1920) at pixel budgets of about 0.1, 0.25 and 1 MP per view and
   with 15, 30 and 58 training views, each in its own process: median seconds per iteration, peak memory of the
   process, and the SA3D rendering-weight cache per view (MB, at SA3D's own 65 536-px budget).
2. PSNR against time on flower (LLFF, held-out views scored at 1008x756): the forward-facing field (NDC) beside the
   bounded box over the same cameras, after each training budget in --budgets (default 60 and 200 s).

    python scripts/bench_real.py [--real ../shared/data/real] [--part scaling|psnr]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def child_scaling(capture: Path, budget: int, views: int, iterations: int) -> dict:
    import numpy as np

    from sa3d_blender.core.data.datasets import load_dataset
    from sa3d_blender.core.devices import pick_device
    from sa3d_blender.core.segment.sa3d import SA3D_PIXEL_BUDGET
    from sa3d_blender.core.field.training import TrainSettings, train_field
    from sa3d_blender.core.segment.view_cache import compute_view_weights

    pick_device("cpu")
    dataset = load_dataset(capture).at_pixel_budget(budget)
    dataset.train = dataset.train[np.linspace(0, len(dataset.train) - 1, views).round().astype(int)]
    times, last = [], [time.perf_counter()]

    def progress(fraction, loss, train_psnr):  # every 10 iterations
        now = time.perf_counter()
        times.append((now - last[0]) / 10)
        last[0] = now

    field, _ = train_field(dataset, TrainSettings(iterations=iterations), progress=progress)
    train_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pixels = int(dataset.cameras.width[0] * dataset.cameras.height[0])
    # what SA3D keeps per view: the weights at its own pixel budget, whatever the training size
    sa3d_cameras = dataset.cameras.scaled(min(1.0, (SA3D_PIXEL_BUDGET / pixels) ** 0.5))
    weights = compute_view_weights(field, sa3d_cameras, int(dataset.train[0]))
    sa3d_pixels = int(sa3d_cameras.width[0] * sa3d_cameras.height[0])
    return {"budget": budget, "pixels_per_view": pixels, "views": views, "median_step_s": statistics.median(times[3:]),
            "train_peak_mb": train_peak, "weights_mb_per_view": weights.megabytes,
            "weights_entries_per_pixel": weights.matrix.nnz / sa3d_pixels}


def child_psnr(capture: Path, scene_type: str, checkpoints: list[float]) -> dict:
    from sa3d_blender.core.data.datasets import load_dataset
    from sa3d_blender.core.devices import pick_device
    from sa3d_blender.core.field.training import TrainSettings, evaluate_views, train_field

    pick_device("cpu")
    full = load_dataset(capture, scene_type=scene_type)
    work = full.at_pixel_budget()
    out = {"scene_type": scene_type, "psnr": {}}
    for seconds in checkpoints:
        field, summary = train_field(work, TrainSettings(seconds=seconds))
        out["psnr"][seconds] = evaluate_views(field, full, full.test)["psnr"]
        out.setdefault("iterations", {})[seconds] = summary["iterations"]
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=ROOT.parent / "shared" / "data" / "real")
    parser.add_argument("--part", choices=("scaling", "psnr", "all"), default="all")
    parser.add_argument("--iterations", type=int, default=150, help="training iterations per scaling run")
    parser.add_argument("--budgets", default="60,200", help="training seconds of the PSNR runs, comma-separated")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--args", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "scaling":
        budget, views = (int(v) for v in args.args.split(","))
        print(json.dumps(child_scaling(args.real / "fox", budget, views, args.iterations)))
        return 0
    if args.child == "psnr":
        kind, budgets = args.args.split(":")
        print(json.dumps(child_psnr(args.real / "flower", kind, [float(b) for b in budgets.split(",")])))
        return 0
    if args.part in ("scaling", "all"):
        print(f"{'MP/view':>8} {'views':>6} {'s/iter':>8} {'peak MB':>8} {'weights MB/view':>16} {'entries/px':>11}")
        rows = [(budget, 58) for budget in (100_000, 250_000, 1_000_000)] + [(250_000, v) for v in (15, 30)]
        for budget, views in rows:
            r = run_child("--real", str(args.real), "--iterations", str(args.iterations), "--child", "scaling",
                          "--args", f"{budget},{views}")
            print(f"{r['pixels_per_view'] / 1e6:8.2f} {views:6d} {r['median_step_s']:8.3f} {r['train_peak_mb']:8.0f} "
                  f"{r['weights_mb_per_view']:16.1f} {r['weights_entries_per_pixel']:11.1f}", flush=True)
    if args.part in ("psnr", "all"):
        results = {kind: run_child("--real", str(args.real), "--child", "psnr", "--args", f"{kind}:{args.budgets}")
                   for kind in ("forward", "bounded")}
        print(f"{'field':>10} " + " ".join(f"{float(b):>9.0f}s" for b in args.budgets.split(",")) + f" {'peak MB':>8}")
        for kind, r in results.items():
            print(f"{kind:>10} " + " ".join(f"{v:8.2f}dB" for v in r["psnr"].values()) + f" {r['peak_mb']:8.0f}")
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
