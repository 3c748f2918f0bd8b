"""Benchmark: the project's voxel-field training step against a plain dense `F.grid_sample` step.

Both train from scratch on the same scene for the same wall-clock time, at the same final grid resolution and ray
batch, each in its own subprocess (so peak memory is per method). Prints median seconds per iteration, test PSNR after
the same time, peak memory, and the ratios.

    python scripts/bench_field.py --scene out/demo_scene --seconds 120
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def dense_baseline(dataset, shape, batch_rays: int, seconds: float, device: str) -> tuple[list[float], object]:
    """Reference-style dense field: grid_sample on [1,C,X,Y,Z] grids, every step of every ray sampled, no skipping.

    Same optimiser, learning rate, initial opacity and marching step as the project's field.
    """
    import torch
    import torch.nn.functional as F

    from sa3d_blender.core.field.rendering import ray_box_intersection
    from sa3d_blender.core.field.training import PixelBank, TrainSettings

    bank = PixelBank(dataset, dataset.train, device)
    bbox = torch.as_tensor(dataset.bbox, dtype=torch.float32, device=device)
    density = torch.zeros(1, 1, *shape, requires_grad=True, device=device)
    color = torch.zeros(1, 3, *shape, requires_grad=True, device=device)
    background = torch.zeros(3, requires_grad=True, device=device)
    voxel = float(((bbox[1] - bbox[0]) / (torch.tensor(shape, device=device) - 1)).mean())
    settings = TrainSettings()
    config = settings.field.for_space(None)  # the bounded field's step and initial opacity
    step_ratio = config.step_ratio
    step = step_ratio * voxel
    shift = math.log(math.expm1(-math.log(1 - config.alpha_init) / step_ratio))
    n_steps = int(math.ceil(float((bbox[1] - bbox[0]).norm()) / step))
    optim = torch.optim.Adam([density, color, background], lr=settings.lr, betas=(0.9, 0.99), eps=1e-15, fused=True)

    def render(origins, dirs):
        t_near, t_far = ray_box_intersection(origins, dirs, bbox)
        t = t_near[:, None] + (torch.arange(n_steps, device=device)[None] + 0.5) * step
        pts = origins[:, None] + dirs[:, None] * t[..., None]
        # grid_sample takes (x, y, z) = (W, H, D) order, i.e. the reverse of our (i, j, k) grid axes
        norm = ((pts - bbox[0]) / (bbox[1] - bbox[0]) * 2 - 1).flip(-1)[None, None]
        raw = F.grid_sample(density, norm, align_corners=True)[0, 0, 0]
        rgb = torch.sigmoid(F.grid_sample(color, norm, align_corners=True)[0, :, 0].permute(1, 2, 0) * 0.2820948)
        alpha = -torch.expm1(-F.softplus(raw + shift) * step_ratio) * (t < t_far[:, None])
        trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1] + 1e-10], 1), 1)
        weights = alpha * trans
        final = trans[:, -1] * (1 - alpha[:, -1])
        return (weights[..., None] * rgb).sum(1) + final[:, None] * torch.sigmoid(background)

    gen = torch.Generator().manual_seed(0)
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        origins, dirs, colors, _ = bank.batch(torch.randint(0, len(bank), (batch_rays,), generator=gen))
        loss = torch.mean((render(origins, dirs) - colors) ** 2)
        optim.zero_grad()
        loss.backward()
        optim.step()
        loss.item()  # waits for a GPU to finish the step
        times.append(time.perf_counter() - t0)

    @torch.no_grad()
    def render_view(i):
        origins, dirs = (torch.as_tensor(a, device=device) for a in dataset.cameras.pixel_rays(i))
        out = torch.cat([render(origins[s:s + 2048], dirs[s:s + 2048]) for s in range(0, len(origins), 2048)])
        return out.clamp(0, 1).reshape(int(dataset.cameras.height[i]), int(dataset.cameras.width[i]), 3).cpu().numpy()

    return times, render_view


def run_method(method: str, scene: Path, seconds: float, num_voxels: int, batch_rays: int, device: str) -> dict:
    import numpy as np
    import torch

    from sa3d_blender.core.data.datasets import load_dataset
    from sa3d_blender.core.devices import pick_device
    from sa3d_blender.core.metrics import psnr
    from sa3d_blender.core.field.training import TrainSettings, evaluate_views, train_field
    from sa3d_blender.core.field.voxel_field import grid_shape_for

    device = str(pick_device(device))
    # both fields in the same bounded box: this compares the step, not the scene parameterisation
    dataset = load_dataset(scene, scene_type="bounded")
    shape = grid_shape_for(dataset.bbox, num_voxels)
    if method == "dense":
        times, render_view = dense_baseline(dataset, shape, batch_rays, seconds, device)
        test_psnr = float(np.mean([psnr(render_view(int(i)), dataset.load_image(int(i))) for i in dataset.test]))
    else:
        times = []
        last = [time.perf_counter()]

        def progress(fraction, loss, train_psnr):  # called every 10 iterations
            now = time.perf_counter()
            times.append((now - last[0]) / 10)
            last[0] = now

        field, summary = train_field(dataset, TrainSettings(seconds=seconds, num_voxels_end=num_voxels, batch_rays=batch_rays),
                                     device=device, progress=progress)
        test_psnr = evaluate_views(field, dataset, dataset.test, device=device)["psnr"]
        times = times[len(times) // 2:]  # the fine-grid half: same resolution as the dense grid
    iterations = len(times) if method == "dense" else summary["iterations"]
    return {"method": method, "grid_shape": list(shape), "iterations": iterations,
            "median_step_s": statistics.median(times), "test_psnr": test_psnr,
            "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "torch_threads": torch.get_num_threads(),
            "device": device, "peak_gpu_memory_mb": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=120.0, help="training time per method")
    parser.add_argument("--num-voxels", type=int, default=96**3, help="grid size (voxels) shared by both methods")
    parser.add_argument("--batch-rays", type=int, default=4096)
    parser.add_argument("--device", default="cpu", choices=("auto", "cuda", "mps", "cpu"))
    parser.add_argument("--method", choices=("ours", "dense"), help=argparse.SUPPRESS)  # subprocess mode
    args = parser.parse_args()
    if args.method:
        print(json.dumps(run_method(args.method, args.scene, args.seconds, args.num_voxels, args.batch_rays, args.device)))
        return 0
    results = {}
    for method in ("ours", "dense"):
        cmd = [sys.executable, __file__, "--scene", str(args.scene), "--seconds", str(args.seconds),
               "--num-voxels", str(args.num_voxels), "--batch-rays", str(args.batch_rays), "--device", args.device,
               "--method", method]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        results[method] = json.loads(out)
    ours, dense = results["ours"], results["dense"]
    print(f"{'method':8} {'grid':>16} {'median s/iter':>14} {'test PSNR':>10} {'peak MB':>9}")
    for r in (ours, dense):
        print(f"{r['method']:8} {'x'.join(map(str, r['grid_shape'])):>16} {r['median_step_s']:14.4f} "
              f"{r['test_psnr']:10.2f} {r['peak_memory_mb']:9.0f}")
    speedup = dense["median_step_s"] / ours["median_step_s"]
    print(f"speed-up per iteration: {speedup:.1f}x; PSNR difference after {args.seconds:.0f} s each: "
          f"{ours['test_psnr'] - dense['test_psnr']:+.2f} dB; memory ratio dense/ours: "
          f"{dense['peak_memory_mb'] / ours['peak_memory_mb']:.2f}")
    print(json.dumps({"speedup": speedup, "ours": ours, "dense": dense}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
