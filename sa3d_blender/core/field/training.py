"""Fit a VoxelField to a dataset's training views within a time (or iteration) budget, coarse to fine."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field as dc_field
from typing import Callable

import numpy as np
import torch

from ..metrics import psnr
from .field_space import FieldSpace, contraction_around, ndc_for_cameras
from .rendering import render_image, render_rays
from .trilinear import GradientPool
from .voxel_field import FieldConfig, VoxelField, grid_shape_for

log = logging.getLogger(__name__)

# progress(fraction_done, photometric MSE, train_psnr); raise errors.Cancelled inside it to stop
ProgressFn = Callable[[float, float, float], None]


@dataclass
class TrainSettings:
    # wall-clock budget; the schedule (growth, learning rate) follows elapsed time. 190 s keeps the train command
    # (loading, training, scoring the held-out views) within 5 minutes on the real captures on 2 cores (the fox:
    # 200 s of training + 102 s scoring 9 views of 499x888 made 305 s)
    seconds: float = 190.0
    iterations: int | None = None  # when set, a fixed iteration count replaces the time budget (reproducible runs)
    batch_rays: int = 4096
    num_voxels_start: int = 64**3
    # flower, 240 s, before the TV term: 2.1 M voxels 23.7 dB, 4.1 M 24.0 dB, 8.2 M 23.9 dB (held-out, working size)
    num_voxels_end: int = 160**3
    growth_at: tuple[float, ...] = (0.15, 0.35)  # fractions of the budget where the grid grows towards num_voxels_end
    lr: float = 0.4  # high for a voxel grid, but measured best at this budget: 29.1 dB after 300 iterations vs 23.8 (0.2), 21.6 (0.1)
    # weight of a loss pushing each ray's opacity to 0 or 1 (DVGO's background entropy). It clears the faint fog that
    # otherwise fills empty space and keeps it occupied. Demo scene, 120 s, 128^3: 0 -> 38 % occupied, 0.176 s/iteration,
    # 32.75 dB; 0.003 -> 12 %, 0.079 s, 32.85 dB; 0.01 -> 3 %, 0.072 s, but 29.5 dB (it also erodes real surfaces).
    # Bounded and forward-facing fields (LLFF measured the same at 0.001, but the reduced flower's SA3D then kept more
    # weight entries per view: 3109 MB peak)
    opacity_entropy: float = 0.003
    # Contracted (360-degree) fields: a weight on the whole ray's opacity (clears the world's fog) and a smaller one on
    # the opacity of its part in the inner cube, where the objects are (clears the fog between them).
    # Room, 190 s (inner, whole ray): (0, 0.003) 27.87 dB (the 0.003 above, as it was), (0.003, 0.001) 27.99,
    # (0, 0.001) 28.71, (0.001, 0.001) 28.72. (0, 0.001) let touching look-alikes merge (reduced lookalike test:
    # bunny1 IoU 0.876 -> 0.647; (0, 0.002) 0.577) through the faint fog between them; (0.001, 0.001) keeps them
    # apart (0.844, mean 0.887) but costs the fox: 22.70 -> 22.16 dB in one A/B run, 22.48 -> 21.82 in another (its
    # worst held-out view 16.55 -> 12.97). (0.0003, 0.001) keeps both: lookalike bunny1 0.853, mean 0.888; fox 22.60
    # and 22.48 dB; room 28.65 dB beside 28.34 for (0.001, 0.001) on the same machine
    contracted_opacity_entropy: float = 0.001
    contracted_inner_entropy: float = 0.0003
    lr_final_ratio: float = 0.1
    # forward-facing (NDC) fields: field-space depth scaled by this, so that the grid's cubic voxels put about 2.4x
    # more vertices across the image than along the depth (DVGO v2's LLFF grids: ~360 x 360 x 128). 190 s on 2 cores,
    # held-out PSNR at 1008x756 for 1.0 / 0.4 / 0.25: flower 24.61 / 24.75 / 24.56 dB (1876 / 2275 / 2242 iterations),
    # fern 22.13 / 22.16 / 22.06 dB (1471 / 1759 / 1806): shorter rays in field space make a step 1.2x cheaper
    ndc_depth_scale: float = 0.4
    # per-photo exposure: a gain and an offset per colour channel and training view, kept at zero mean over the views
    # so that the field itself renders the average exposure (what held-out views are scored against)
    exposure: bool = True
    exposure_lr: float = 0.01
    # total variation of the raw density between neighbouring vertices (DVGO uses it on LLFF): held-out views see
    # what training views did not pin down, and a smooth density there beats a floater. flower, 240 s, 4.1 M voxels:
    # 0 -> 24.27 dB held-out (working size), 1e-4 -> 25.28 dB though 30 % fewer iterations
    density_tv: float = 1e-4
    occupancy_warmup: int = 30  # iterations on the coarse grid before empty space is first pruned
    occupancy_ramp: int = 300  # iteration by which the pruning threshold reaches its final value
    occupancy_every: int = 25  # iterations between occupancy updates
    min_stage_iterations: int = 100  # a grid stage lasts at least this long, however slow the machine
    seed: int = 0
    field: FieldConfig = dc_field(default_factory=FieldConfig)


TV_SAMPLES = 1 << 16  # vertices drawn per iteration for the density TV estimate


class PixelBank:
    """Every training pixel's colour (8 bits per channel, as the photos store them); rays are generated per batch from
    (view, pixel) indices, so memory is 3 bytes per training pixel instead of 36 for stored rays and colours."""

    def __init__(self, dataset, indices, device):
        self.cameras = dataset.cameras
        self.views = np.asarray(indices, dtype=np.int64)
        sizes = (self.cameras.width * self.cameras.height)[self.views]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)])
        colors = torch.empty(int(self.offsets[-1]), 3, dtype=torch.uint8)
        for k, i in enumerate(self.views):
            image = dataset.load_image(int(i)).reshape(-1, 3)
            colors[self.offsets[k]:self.offsets[k + 1]] = torch.from_numpy(np.round(image * 255).astype(np.uint8))
        self.colors = colors.to(device)
        self.device = device

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def batch(self, pick: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """origins [B,3], unit dirs [B,3], colours [B,3] in [0,1] and the position in `views` [B] of pixels `pick`."""
        flat = pick.cpu().numpy()
        k = np.searchsorted(self.offsets, flat, side="right") - 1
        view = self.views[k]
        local = flat - self.offsets[k]
        width = self.cameras.width[view]
        origins, dirs = self.cameras.rays(view, local % width + 0.5, local // width + 0.5)
        to = lambda a: torch.from_numpy(a).to(self.device)
        colors = self.colors.index_select(0, pick.to(self.colors.device)).float() / 255.0
        return to(origins), to(dirs), colors, to(k)


def opacity_entropy(acc: torch.Tensor) -> torch.Tensor:
    """Mean binary entropy of the rays' opacities: smallest where each ray is either clear or opaque."""
    acc = acc.clamp(1e-6, 1 - 1e-6)
    return -torch.mean(acc * torch.log(acc) + (1 - acc) * torch.log(1 - acc))


def density_total_variation(field: VoxelField, samples: int | None = TV_SAMPLES) -> torch.Tensor:
    """Mean squared difference of the raw density between an occupied vertex and its next neighbour, per axis.

    Estimated on `samples` random vertices (the occupied ones among them; None: all vertices): the exact mean over a
    160^3 grid cost 0.4-1.2 s per iteration on 2 cores, more than the rendering it regularises."""
    n = field.density.shape[0]
    if samples is None or samples >= n:
        start = torch.arange(n, device=field.density.device)
    else:
        start = torch.randint(0, n, (samples,), device=field.density.device)
    start = start[field.occupancy.index_select(0, start)]
    _, ny, nz = field.shape
    coords = (start // (ny * nz), (start // nz) % ny, start % nz)
    total = field.density.new_zeros(())
    for axis, stride in enumerate((ny * nz, nz, 1)):
        a = start[coords[axis] < field.shape[axis] - 1]
        if len(a):
            diff = field.density.index_select(0, a + stride) - field.density.index_select(0, a)
            total = total + (diff * diff).mean()
    return total


class Exposure(torch.nn.Module):
    """rgb' = rgb * exp(gain[v]) + offset[v] per training view v and colour channel (photos taken with automatic
    exposure and white balance differ by about that much)."""

    def __init__(self, n_views: int, device):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.zeros(n_views, 3, device=device))
        self.offset = torch.nn.Parameter(torch.zeros(n_views, 3, device=device))

    def forward(self, rgb: torch.Tensor, view: torch.Tensor) -> torch.Tensor:
        return rgb * torch.exp(self.gain.index_select(0, view)) + self.offset.index_select(0, view)

    @torch.no_grad()
    def recentre(self) -> None:
        self.gain -= self.gain.mean(0)
        self.offset -= self.offset.mean(0)

    def max_gain(self) -> float:
        """Largest gain of any view and channel, as a factor (1.0: no exposure differences)."""
        return float(torch.exp(self.gain.detach().abs().max()))


def take_step(loss: torch.Tensor, optim: torch.optim.Optimizer, exposure: Exposure | None = None,
              exposure_optim: torch.optim.Optimizer | None = None, pool: GradientPool | None = None) -> None:
    """One optimiser step on `loss` for the field and, when given, the per-view exposure (kept centred); `pool`: the
    field's lookups' gradient pool, flushed before the step."""
    optim.zero_grad(set_to_none=True)
    if exposure is not None:
        exposure_optim.zero_grad(set_to_none=True)
    loss.backward()
    if pool is not None:
        pool.flush()
    optim.step()
    if exposure is not None:
        exposure_optim.step()
        exposure.recentre()


def field_space_for(dataset, settings: TrainSettings) -> FieldSpace | None:
    """Bounded scenes: None (the grid spans the bbox). 360-degree captures: a contraction whose inner cube holds the
    bbox. Forward-facing captures: the NDC of the mean camera, from the near bound (or, without one, the distance to
    the bbox) to infinity."""
    if dataset.scene_type == "bounded":
        return None
    if dataset.scene_type == "forward":
        return ndc_for_cameras(dataset.cameras, dataset.near_bound(), max(dataset.typical_depth(), dataset.near_bound()),
                               depth_scale=settings.ndc_depth_scale)
    return contraction_around(dataset.bbox)


def _growth_shapes(bbox: np.ndarray, settings: TrainSettings) -> list[tuple[int, int, int]]:
    n = len(settings.growth_at)
    ratios = [(settings.num_voxels_end / settings.num_voxels_start) ** (k / max(n, 1)) for k in range(n + 1)]
    return [grid_shape_for(bbox, int(settings.num_voxels_start * r)) for r in ratios]


def _occupancy_threshold(config: FieldConfig, settings: TrainSettings, iteration: int) -> float:
    """Pruning threshold, raised geometrically from half of alpha_init to occupancy_alpha as iterations go by.

    Early on only space that training pushed *below* its initial opacity is known to be empty. Matter whose colour the
    background already explains (a grey floor under a grey sky) gains opacity slowly: pruning it at the initial value
    would starve it of samples for good. Counted in iterations, not seconds, so that a busy machine cannot make it
    prune before the surfaces have formed.
    """
    hi = config.occupancy_alpha
    lo = min(0.5 * config.alpha_init, hi)
    span = max(1, settings.occupancy_ramp - settings.occupancy_warmup)
    ramp = min(1.0, max(0.0, (iteration - settings.occupancy_warmup) / span))
    return lo * (hi / lo) ** ramp


def field_optimizer(field: VoxelField, lr: float) -> torch.optim.Optimizer:
    fused = field.density.device.type in ("cpu", "cuda")
    # per-voxel gradients are ~1e-8 early on (mean loss, tiny weights): the default eps would swallow them
    return torch.optim.Adam([field.density, field.color, field.background], lr=lr, betas=(0.9, 0.99), eps=1e-15, fused=fused)


def train_field(dataset, settings: TrainSettings, device: torch.device | str = "cpu",
                progress: ProgressFn | None = None) -> tuple[VoxelField, dict]:
    """Train a field on `dataset.train`; returns the field and a summary (iterations, seconds, final occupancy, train PSNR)."""
    torch.manual_seed(settings.seed)
    gen = torch.Generator(device="cpu").manual_seed(settings.seed)
    bank = PixelBank(dataset, dataset.train, device)
    space = field_space_for(dataset, settings)
    field_bbox = dataset.bbox if space is None else space.field_bbox()
    shapes = _growth_shapes(field_bbox, settings)
    field = VoxelField(field_bbox, shapes[0], settings.field, space=space).to(device)
    optim = field_optimizer(field, settings.lr)
    exposure = Exposure(len(bank.views), device) if settings.exposure else None
    exposure_optim = torch.optim.Adam(exposure.parameters(), lr=settings.exposure_lr) if exposure else None
    stage, it, next_occupancy = 0, 0, settings.occupancy_warmup
    start = time.perf_counter()
    losses: list[float] = []
    pool = field.gradient_pool = GradientPool()
    contracted = getattr(space, "kind", None) == "contraction"

    def fraction_done() -> float:
        if settings.iterations is not None:
            return it / settings.iterations
        return (time.perf_counter() - start) / settings.seconds

    while (frac := fraction_done()) < 1.0:
        # growing before the first pruning would multiply the cost of marching through still-unpruned space
        if (stage + 1 < len(shapes) and frac >= settings.growth_at[stage]
                and it >= max(settings.occupancy_warmup, (stage + 1) * settings.min_stage_iterations)):
            stage += 1
            field.resize(shapes[stage])
            optim = field_optimizer(field, settings.lr)
            log.info("grid grown to %s at iteration %d", shapes[stage], it)
        lr = settings.lr * settings.lr_final_ratio ** frac
        for group in optim.param_groups:
            group["lr"] = lr
        if it >= next_occupancy:
            occupied = field.update_occupancy(_occupancy_threshold(field.config, settings, it))
            next_occupancy = it + settings.occupancy_every
            log.debug("iteration %d: %.1f %% of the grid occupied", it, 100 * occupied)

        pick = torch.randint(0, len(bank), (settings.batch_rays,), generator=gen)
        origins, dirs, colors, view = bank.batch(pick)
        out = render_rays(field, origins, dirs, jitter=True, inner_opacity=contracted)
        rgb = out["rgb"] if exposure is None else exposure(out["rgb"], view)
        mse = torch.mean((rgb - colors) ** 2)
        loss = mse
        if contracted:
            loss = (loss + settings.contracted_opacity_entropy * opacity_entropy(out["acc"])
                    + settings.contracted_inner_entropy * opacity_entropy(out["acc_inner"]))
        else:
            loss = loss + settings.opacity_entropy * opacity_entropy(out["acc"])
        if settings.density_tv > 0:
            loss = loss + settings.density_tv * density_total_variation(field)
        if exposure is not None:
            for group in exposure_optim.param_groups:
                group["lr"] = settings.exposure_lr * settings.lr_final_ratio ** frac
        take_step(loss, optim, exposure, exposure_optim, pool)
        it += 1
        losses.append(float(mse.detach()))  # reported loss and PSNR are photometric: the regulariser would hide them
        if progress is not None and (it % 10 == 0):
            recent = float(np.mean(losses[-10:]))
            progress(min(fraction_done(), 1.0), recent, -10 * math.log10(max(recent, 1e-10)))

    field.gradient_pool = None
    field.update_occupancy(_occupancy_threshold(field.config, settings, it))
    recent = float(np.mean(losses[-50:])) if losses else float("nan")
    summary = {"iterations": it, "train_seconds": time.perf_counter() - start, "grid_shape": list(field.shape),
               "exposure_max_gain": 1.0 if exposure is None else exposure.max_gain(),
               "occupied_fraction": float(field.occupancy.float().mean()),
               "train_psnr": -10 * math.log10(max(recent, 1e-10))}
    return field, summary


# Held-out views are scored at the image files' size up to this many pixels per view (LLFF's images_4 frames,
# 1008x756, are under it) and this many pixels in all, so that scoring a phone capture's 9 test views of 1080x1920
# costs about a minute on 2 cores rather than a quarter of an hour
EVAL_PIXELS_PER_VIEW = 800_000
EVAL_PIXELS_TOTAL = 4_000_000


# ... and in at most this long: a probe of one view times the field's rendering, and where all views at that size
# would take longer (a foggy phone-capture field on a slow machine: the fox's 9 views took 115 s, and the train
# command 5 min 12 s), every view is scored smaller so that `train` stays within 5 minutes on 2 cores (75 s
# scored flower below its 1008x756: 90 s keeps it there, 59 s, and made the fox's command 4 min 54 s)
EVAL_SECONDS = 90.0
PROBE_PIXELS = 16384  # the probe renders about this many pixels of the first held-out view, spread over it


def evaluation_dataset(dataset, field: VoxelField | None = None, device="cpu", seconds: float = EVAL_SECONDS):
    """The dataset at the size held-out views are scored at: EVAL_PIXELS_PER_VIEW / EVAL_PIXELS_TOTAL, and with a
    `field`, small enough to render them all in about `seconds`."""
    n = max(len(dataset.test), 1)
    scored = dataset.at_pixel_budget(min(EVAL_PIXELS_PER_VIEW, EVAL_PIXELS_TOTAL // n))
    if field is None or not len(dataset.test):
        return scored
    cameras, first = scored.cameras, int(dataset.test[0])
    h, w = int(cameras.height[first]), int(cameras.width[first])
    stride = max(1, int(math.sqrt(h * w / PROBE_PIXELS)))
    rows, cols = np.meshgrid(np.arange(0, h, stride), np.arange(0, w, stride), indexing="ij")
    origins, dirs = cameras.pixel_rays(first)
    pick = (rows * w + cols).reshape(-1)
    start = time.perf_counter()
    render_image(field, origins[pick], dirs[pick], len(pick), 1, device=device)
    per_pixel = (time.perf_counter() - start) / len(pick)
    pixels = float(np.sum(cameras.width[dataset.test] * cameras.height[dataset.test]))
    if per_pixel * pixels <= seconds:
        return scored
    per_view = pixels / len(dataset.test) * seconds / (per_pixel * pixels)
    log.info("held-out views scored at %.0f pixels each so that scoring takes about %.0f s", per_view, seconds)
    return dataset.at_pixel_budget(int(per_view))


def evaluate_views(field: VoxelField, dataset, indices, device="cpu") -> dict:
    """PSNR of the field's renders against the dataset's images at `indices` (per view and mean)."""
    per_view = {}
    for i in indices:
        o, d = dataset.cameras.pixel_rays(int(i))
        h, w = int(dataset.cameras.height[i]), int(dataset.cameras.width[i])
        rendered = render_image(field, o, d, h, w, device=device)
        per_view[dataset.cameras.names[int(i)]] = psnr(rendered["rgb"], dataset.load_image(int(i)))
    values = list(per_view.values())
    return {"psnr": float(np.mean(values)) if values else float("nan"), "per_view_psnr": per_view}
