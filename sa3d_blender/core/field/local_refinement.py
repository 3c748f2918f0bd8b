"""A finer field where one object is: after segmentation, a bounded grid over the object's box, started from the scene
field and trained for a bounded time on the photo rays that cross the box.

The scene field spends its voxels evenly over the capture (the demo's objects are 30 voxels across); the object gets
several times finer voxels here. Everything a ray meets before and after the box comes from the frozen scene field,
composited once per ray before training: pixel = front + T_front * box + T_box * behind, so only the box is marched
while training.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..data.cameras import Cameras
from .rendering import ray_box_intersection, render_rays
from .trilinear import gather
from .training import Exposure, density_total_variation, field_optimizer, take_step
from .voxel_field import VoxelField, grid_shape_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefineSettings:
    seconds: float = 30.0  # training budget per object
    iterations: int | None = None  # when set, a fixed iteration count replaces the time budget
    num_voxels: int = 128**3  # vertices of the local grid
    margin: float = 0.1  # the box grows by this fraction of its size on every side (room for the support's ring)
    batch_rays: int = 4096
    lr: float = 0.1  # the grid starts trained: a quarter of the scene field's rate
    lr_final_ratio: float = 0.1
    density_tv: float = 1e-4
    exposure: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.seconds <= 0 and self.iterations is None:
            raise ValueError(f"seconds must be > 0, got {self.seconds}")
        if self.num_voxels < 8**3:
            raise ValueError(f"num_voxels must be at least 512, got {self.num_voxels}")


@dataclass
class LocalField:
    field: VoxelField  # bounded, in world coordinates
    scale: float  # world length of one field unit of the scene field at the object (1 for a bounded scene field)
    summary: dict


def world_box(field: VoxelField, mask: np.ndarray, margin: float) -> np.ndarray:
    """[2,3] world box around the vertices of `mask` (bool over the scene field's grid), grown by `margin` of its
    size and by a scene voxel on every side."""
    with torch.no_grad():
        points = field.to_world(field.vertex_positions()[torch.from_numpy(mask.reshape(-1))].double()).numpy()
    lo, hi = points.min(axis=0), points.max(axis=0)
    grow = margin * (hi - lo) + field_scale_at(field, 0.5 * (lo + hi)) * field.voxel_size
    return np.stack([lo - grow, hi + grow])


def field_scale_at(field: VoxelField, point: np.ndarray) -> float:
    """World length of one field unit at `point` (the mean over the three axes): the contracted inner cube's half
    size, 1 for a bounded field, depth-dependent in NDC."""
    if field.space is None:
        return 1.0
    eps = 1e-4 * max(1.0, float(np.abs(point).max()))
    p = torch.as_tensor(np.asarray(point, dtype=np.float64))[None].repeat(4, 1)
    p[1:] += torch.eye(3, dtype=torch.float64) * eps
    with torch.no_grad():
        q = field.to_field(p)
    return float(eps / (q[1:] - q[0]).norm(dim=-1).mean())


def local_field_from(field: VoxelField, box: np.ndarray, num_voxels: int) -> LocalField:
    """A bounded field over the world `box`, its density and colour sampled from `field`; opacities are kept: the
    density's unit is rescaled by the world length of a field unit there."""
    scale = field_scale_at(field, box.mean(axis=0))
    local = VoxelField(box, grid_shape_for(box, num_voxels), field.config, base_voxel_size=field.base_voxel_size * scale)
    local = local.to(field.density.device)
    with torch.no_grad():
        index, weights = field.lookup(local.vertex_positions())
        local.density.copy_(gather(field.density, index, weights) + field.density_shift - local.density_shift)
        local.color.copy_(gather(field.color, index, weights))
        local.background.fill_(-30.0)  # nothing behind the box comes from the local field
        local.update_occupancy()
    return LocalField(local, scale, {})


class BoxRays:
    """The photo rays that cross the box, each with what the frozen scene field puts before it (`front` colour and
    `through` transmittance) and behind it (`behind`, already dimmed by the front), and the photo's colour."""

    def __init__(self, field: VoxelField, box: np.ndarray, cameras: Cameras, views, load_image, device,
                 chunk: int = 8192):
        self.cameras, self.device = cameras, device
        view_ids, pixels, colours = [], [], []
        for k, i in enumerate(views):
            pix = _pixels_seeing(cameras, int(i), box)
            if not len(pix):
                continue
            image = load_image(int(i)).reshape(-1, 3)
            view_ids.append(np.full(len(pix), k))
            pixels.append(pix)
            colours.append(image[pix])
        if not pixels:
            raise ValueError("no training view sees the object's box")
        self.views = np.asarray(views, dtype=np.int64)
        self.view = np.concatenate(view_ids)
        self.pixel = np.concatenate(pixels)
        self.colour = torch.from_numpy(np.concatenate(colours).astype(np.float32)).to(device)
        self.front = torch.empty(len(self.pixel), 3, device=device)
        self.behind = torch.empty(len(self.pixel), 3, device=device)
        self.through = torch.empty(len(self.pixel), device=device)
        box_t = torch.as_tensor(box, dtype=torch.float32, device=device)
        scene = _without_box(field, box)
        with torch.no_grad():
            for s in range(0, len(self.pixel), chunk):
                o, d = self.rays(slice(s, s + chunk))
                t_in, _ = ray_box_intersection(o, d, box_t)
                out = render_rays(scene, o, d, keep_samples=True)
                samples = out["samples"]
                first = samples.t < t_in.index_select(0, samples.ray_id)
                ray, w = samples.ray_id[first], samples.weights[first]
                rgb = scene.rgb(samples.index[first], samples.corner_weights[first], d.index_select(0, ray))
                front = torch.zeros(len(o), 3, device=device).index_add_(0, ray, w[:, None] * rgb)
                seen = torch.zeros(len(o), device=device).index_add_(0, ray, w)
                self.front[s:s + chunk] = front
                self.through[s:s + chunk] = (1 - seen).clamp_min(0)
                self.behind[s:s + chunk] = out["rgb"] - front

    def __len__(self) -> int:
        return len(self.pixel)

    def rays(self, pick) -> tuple[torch.Tensor, torch.Tensor]:
        view = self.views[self.view[pick]]
        width = self.cameras.width[view]
        origins, dirs = self.cameras.rays(view, self.pixel[pick] % width + 0.5, self.pixel[pick] // width + 0.5)
        return torch.from_numpy(origins).to(self.device), torch.from_numpy(dirs).to(self.device)

    def composite(self, local: VoxelField, pick: torch.Tensor, jitter: bool) -> torch.Tensor:
        """Pixel colours [B] of rays `pick` with the box rendered by `local`."""
        o, d = self.rays(pick.cpu().numpy())
        out = render_rays(local, o, d, jitter=jitter)
        inside = out["rgb"] - (1 - out["acc"])[:, None] * local.background_rgb()
        through = self.through.index_select(0, pick)
        return (self.front.index_select(0, pick) + through[:, None] * inside
                + (1 - out["acc"])[:, None] * self.behind.index_select(0, pick))


def refine(field: VoxelField, box: np.ndarray, cameras: Cameras, views, load_image,
           settings: RefineSettings = RefineSettings()) -> LocalField:
    """Train a LocalField over the world `box` on the views' rays that cross it (see the module's docstring)."""
    start = time.perf_counter()
    device = field.density.device
    torch.manual_seed(settings.seed)
    gen = torch.Generator(device="cpu").manual_seed(settings.seed)
    made = local_field_from(field, box, settings.num_voxels)
    local = made.field
    rays = BoxRays(field, box, cameras, views, load_image, device)
    prepared = time.perf_counter() - start
    optim = field_optimizer(local, settings.lr)
    exposure = Exposure(len(rays.views), device) if settings.exposure else None
    exposure_optim = torch.optim.Adam(exposure.parameters(), lr=0.01) if exposure is not None else None
    check = torch.randint(0, len(rays), (min(len(rays), 8192),), generator=gen)
    with torch.no_grad():
        before = _psnr(rays.composite(local, check, jitter=False), rays.colour.index_select(0, check))
    it, train_start = 0, time.perf_counter()

    def fraction_done() -> float:
        if settings.iterations is not None:
            return it / settings.iterations
        return (time.perf_counter() - train_start) / settings.seconds

    while (frac := fraction_done()) < 1.0:
        for group in optim.param_groups:
            group["lr"] = settings.lr * settings.lr_final_ratio ** frac
        if it % 25 == 24:
            local.update_occupancy()
        pick = torch.randint(0, len(rays), (settings.batch_rays,), generator=gen)
        rgb = rays.composite(local, pick, jitter=True)
        if exposure is not None:
            rgb = exposure(rgb, torch.from_numpy(rays.view[pick.numpy()]).to(device))
        loss = torch.mean((rgb - rays.colour.index_select(0, pick)) ** 2)
        if settings.density_tv > 0:
            loss = loss + settings.density_tv * density_total_variation(local)
        take_step(loss, optim, exposure, exposure_optim)
        it += 1
    local.update_occupancy()
    with torch.no_grad():
        after = _psnr(rays.composite(local, check, jitter=False), rays.colour.index_select(0, check))
    made.summary = {"rays": len(rays), "iterations": it, "grid_shape": list(local.shape),
                    "voxel_size": local.voxel_size, "psnr_before": before, "psnr_after": after,
                    "prepare_seconds": prepared, "seconds": time.perf_counter() - start}
    log.info("refined %s grid (%.1f mm voxels) on %d rays: %d iterations, box PSNR %.2f -> %.2f dB, %.1f s",
             "x".join(map(str, local.shape)), 1000 * local.voxel_size, len(rays), it, before, after,
             made.summary["seconds"])
    return made


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10 * math.log10(max(float(torch.mean((a.clamp(0, 1) - b) ** 2)), 1e-10))


def _pixels_seeing(cameras: Cameras, i: int, box: np.ndarray) -> np.ndarray:
    """Flat pixel indices of view i whose rays cross `box`."""
    w, h = int(cameras.width[i]), int(cameras.height[i])
    corners = np.array([[box[a, 0], box[b, 1], box[c, 2]] for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    xy, depth = cameras.project(i, corners)
    if np.all(depth > 0) and np.all(np.isfinite(xy)):
        pad = 0.05 * (xy.max(axis=0) - xy.min(axis=0)) + 2
        x0, y0 = np.clip(np.floor(xy.min(axis=0) - pad), 0, [w, h]).astype(int)
        x1, y1 = np.clip(np.ceil(xy.max(axis=0) + pad), 0, [w, h]).astype(int)
    else:  # the camera is inside or beside the box: every pixel may see it
        x0, y0, x1, y1 = 0, 0, w, h
    if x1 <= x0 or y1 <= y0:
        return np.zeros(0, dtype=np.int64)
    cols, rows = np.meshgrid(np.arange(x0, x1), np.arange(y0, y1))
    pixel = (rows * w + cols).reshape(-1)
    origins, dirs = cameras.rays(np.full(len(pixel), i), pixel % w + 0.5, pixel // w + 0.5)
    t_in, t_out = ray_box_intersection(torch.from_numpy(origins), torch.from_numpy(dirs),
                                       torch.as_tensor(box, dtype=torch.float32))
    return pixel[(t_out > t_in).numpy()]


def _without_box(field: VoxelField, box: np.ndarray) -> VoxelField:
    """A copy of `field` that skips the vertices inside the world `box` (the local field renders them)."""
    import copy

    scene = copy.deepcopy(field)
    with torch.no_grad():
        world = scene.to_world(scene.vertex_positions().double()).cpu().numpy()
    inside = np.all((world >= box[0]) & (world <= box[1]), axis=1)
    occupancy = scene.occupancy.clone()
    occupancy[torch.from_numpy(inside).to(occupancy.device)] = False
    scene.set_occupancy(occupancy)
    return scene
