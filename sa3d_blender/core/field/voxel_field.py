"""Voxel radiance field: a density grid and a colour grid over the scene, with an occupancy grid for empty-space skipping.

Grids store values at vertices: index (i, j, k) sits at `bbox[0] + (i, j, k) / (shape - 1) * (bbox[1] - bbox[0])` in
*field space* (field_space.py): the world for a bounded field, a contracted or NDC space for unbounded captures.
Tables are flat (density [X*Y*Z], colour channels-last [X*Y*Z, C]) so a lookup is 8 gathers (see trilinear.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from .field_space import FieldSpace
from .trilinear import GradientPool, corner_indices, gather

COARSE_CELL = 4  # vertices per side of a coarse occupancy cell, used to skip empty space in big strides

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199


@dataclass
class FieldConfig:
    sh_degree: int = 0  # 0: diffuse colour; 1: first-order view dependence (4 coefficients per channel)
    alpha_init: float = 1e-3  # opacity of one marching step at start (1e-4 left grey floors transparent)
    step_ratio: float | None = None  # ray-marching step, in voxels (None: by the field's space, for_space)
    # a vertex whose one-step opacity is below this is empty space once training settled; measured on the demo scene
    # (240 s, half-voxel steps): 1e-2 gave 932 iterations, 41 % occupied, 33.3 dB; 1e-3 gave 616 iterations, 75 %
    # occupied, 32.7 dB. None: by the field's space, the same opacity per unit length whatever the step
    occupancy_alpha: float | None = None

    @property
    def sh_coefficients(self) -> int:
        return (self.sh_degree + 1) ** 2

    def for_space(self, space: FieldSpace | None) -> "FieldConfig":
        """This config with the step and the pruning threshold it leaves open chosen for the field's space.

        A forward-facing (NDC) field marches one-voxel steps, other fields half-voxel steps. An NDC field of an LLFF
        capture stays 34-43 % occupied (the room and the demo: 5-10 %), so marching dominates its training step:
        with one-voxel steps, 190 s on 2 cores gave fern 859 -> 1437 iterations and 21.88 -> 22.12 dB held-out,
        flower 1191 -> 1926 and 24.36 -> 24.63 dB; the same on 360-degree fields gave room 27.93 -> 27.91 dB
        (2331 -> 3145 iterations) and the demo 31.08 -> 30.83 dB (2528 -> 2996, 240 s)."""
        step = self.step_ratio if self.step_ratio is not None else (
            1.0 if space is not None and space.kind == "ndc" else 0.5)
        occupancy = self.occupancy_alpha if self.occupancy_alpha is not None else (
            1.0 - (1.0 - 1e-2) ** (step / 0.5))  # 1e-2 per half voxel
        return replace(self, step_ratio=step, occupancy_alpha=occupancy)


def grid_shape_for(bbox: np.ndarray, num_voxels: int) -> tuple[int, int, int]:
    """Vertex counts along x, y, z that give cubic voxels and about `num_voxels` in the box."""
    extent = np.asarray(bbox[1], dtype=np.float64) - np.asarray(bbox[0], dtype=np.float64)
    voxel = (np.prod(extent) / num_voxels) ** (1.0 / 3.0)
    return tuple(int(max(2, round(e / voxel) + 1)) for e in extent)


class VoxelField(torch.nn.Module):
    def __init__(self, bbox: np.ndarray, shape: tuple[int, int, int], config: FieldConfig, base_voxel_size: float | None = None,
                 space: FieldSpace | None = None):
        """`bbox` is in field space: the world box of a bounded field (`space` None), else `space.field_bbox()`."""
        super().__init__()
        self.config = config.for_space(space)
        self.space = space
        self.register_buffer("bbox", torch.as_tensor(np.asarray(bbox), dtype=torch.float32).clone())
        self.shape = tuple(int(s) for s in shape)
        # density is parameterised per *base* voxel so that growing the grid does not change the opacity it encodes
        self.base_voxel_size = float(base_voxel_size if base_voxel_size is not None else self.voxel_size)
        n = int(np.prod(self.shape))
        # two tables: every sample needs density, but only the few that reach the pixel need colour
        self.density = torch.nn.Parameter(torch.zeros(n))
        self.color = torch.nn.Parameter(torch.zeros(n, 3 * config.sh_coefficients))
        self.background = torch.nn.Parameter(torch.zeros(3))
        self.register_buffer("occupancy", torch.ones(n, dtype=torch.bool))
        # a buffer, not an attribute, so that .to(device) moves it with the rest
        self.register_buffer("coarse_occupancy", self._coarsen(self.occupancy))
        # softplus(shift) * step = -log(1 - alpha_init) for the base grid's step (step_ratio base voxels): an untouched
        # vertex has opacity alpha_init per step; fixed at creation, so a grown or reloaded grid keeps its opacities
        self.density_shift = math.log(math.expm1(-math.log(1.0 - self.config.alpha_init) / self.config.step_ratio))
        # set while training: lookups leave the tables' gradients there, summed once per step (trilinear.GradientPool)
        self.gradient_pool: GradientPool | None = None

    # --- geometry -------------------------------------------------------------------------------------------------
    @property
    def voxel_size(self) -> float:
        extent = (self.bbox[1] - self.bbox[0]).cpu().numpy()
        return float(np.mean(extent / (np.asarray(self.shape) - 1)))

    @property
    def step_size(self) -> float:
        """Ray-marching step in world units."""
        return self.config.step_ratio * self.voxel_size

    def to_field(self, points: torch.Tensor) -> torch.Tensor:
        """World points -> field space."""
        return points if self.space is None else self.space.to_field(points)

    def to_world(self, points: torch.Tensor) -> torch.Tensor:
        """Field-space points -> world."""
        return points if self.space is None else self.space.to_world(points)

    def grid_coords(self, points: torch.Tensor) -> torch.Tensor:
        """World points -> continuous vertex coordinates."""
        offset, scale = self.grid_transform()
        return (self.to_field(points) - offset) * scale


    def grid_transform(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(offset, scale) with grid_coords(p) = (p - offset) * scale."""
        size = torch.tensor(self.shape, dtype=self.bbox.dtype, device=self.bbox.device) - 1
        return self.bbox[0], size / (self.bbox[1] - self.bbox[0])

    def _linear(self, ijk: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
        # float arithmetic is exact below 2**24 and much cheaper than per-axis integer clamps; clamping the linear
        # index only matters for samples a rounding error outside the box
        lin = (ijk[..., 0] * shape[1] + ijk[..., 1]) * shape[2] + ijk[..., 2]
        return lin.long().clamp_(0, shape[0] * shape[1] * shape[2] - 1)

    def nearest_index(self, grid: torch.Tensor) -> torch.Tensor:
        """Linear index of the vertex nearest to each point given in grid coordinates."""
        return self._linear(grid.round(), self.shape)

    @property
    def coarse_shape(self) -> tuple[int, int, int]:
        return tuple(-(-s // COARSE_CELL) for s in self.shape)

    def coarse_index(self, grid: torch.Tensor) -> torch.Tensor:
        """Linear index of the coarse occupancy cell holding each point given in grid coordinates.

        Points outside the grid are projected onto it first: a group of samples straddling the box's exit still
        looks up the cell its in-box samples fall near (the projection only brings them closer).
        """
        top = torch.tensor(self.shape, dtype=grid.dtype, device=grid.device) - 1
        return self._linear(torch.floor(grid.clamp(min=0).minimum(top) / COARSE_CELL), self.coarse_shape)

    def _coarsen(self, occupancy: torch.Tensor) -> torch.Tensor:
        # The marcher tests a group of COARSE_CELL steps at its centre c; its samples round to vertices within
        # reach = (COARSE_CELL - 1) / 2 steps + 0.5 of c along each grid axis. For c in cell q = [4q, 4q + 4) those
        # are the vertices 4q - floor(reach) .. 4q + 3 + ceil(reach): one strided max-pool over a padded grid.
        step_in_grid_units = self.step_size * float(self.grid_transform()[1].max())
        reach = 0.5 * (COARSE_CELL - 1) * step_in_grid_units + 0.5
        before, kernel = math.floor(reach), COARSE_CELL + math.floor(reach) + math.ceil(reach)
        pad = []
        for n, c in zip(reversed(self.shape), reversed(self.coarse_shape)):
            pad += [before, COARSE_CELL * (c - 1) + kernel - before - n]
        fine = F.pad(occupancy.float().view(1, 1, *self.shape), pad)
        return (F.max_pool3d(fine, kernel_size=kernel, stride=COARSE_CELL) > 0).view(-1)

    def set_occupancy(self, occupancy: torch.Tensor) -> None:
        self.occupancy = occupancy.to(self.bbox.device).reshape(-1).bool()
        self.coarse_occupancy = self._coarsen(self.occupancy)

    def vertex_positions(self) -> torch.Tensor:
        """Field-space positions of the vertices [X*Y*Z, 3]."""
        axes = [torch.linspace(float(self.bbox[0, d]), float(self.bbox[1, d]), self.shape[d], device=self.bbox.device) for d in range(3)]
        return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)

    def inner_bbox(self) -> np.ndarray:
        """[2,3] field-space box of the inner region (the whole grid for a bounded field)."""
        return self.bbox.cpu().numpy().astype(np.float64) if self.space is None else self.space.inner_bbox()

    def inner_vertices(self) -> torch.Tensor:
        """bool [X*Y*Z]: the vertices of the inner cube (all of them for a bounded field)."""
        if self.space is None:
            return torch.ones(int(np.prod(self.shape)), dtype=torch.bool, device=self.bbox.device)
        return self.space.inner(self.vertex_positions())

    # --- field values -----------------------------------------------------------------------------------------------
    def lookup(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return corner_indices(self.grid_coords(points), self.shape)

    def alpha_from_raw(self, raw_density: torch.Tensor, step: float | torch.Tensor) -> torch.Tensor:
        """Opacity [N] of a ray segment of length `step` (field-space units; a scalar or one per sample)."""
        sigma = F.softplus(raw_density + self.density_shift)
        return -torch.expm1(-sigma * (step / self.base_voxel_size))

    def alpha(self, index: torch.Tensor, weights: torch.Tensor, step: float | torch.Tensor) -> torch.Tensor:
        return self.alpha_from_raw(gather(self.density, index, weights, self.gradient_pool), step)

    def rgb(self, index: torch.Tensor, weights: torch.Tensor, viewdirs: torch.Tensor) -> torch.Tensor:
        coeffs = gather(self.color, index, weights, self.gradient_pool).reshape(-1, 3, self.config.sh_coefficients)
        logits = coeffs[..., 0] * SH_C0
        if self.config.sh_degree >= 1:
            x, y, z = viewdirs[:, 0:1], viewdirs[:, 1:2], viewdirs[:, 2:3]
            logits = logits + SH_C1 * (-y * coeffs[..., 1] + z * coeffs[..., 2] - x * coeffs[..., 3])
        return torch.sigmoid(logits)

    def background_rgb(self) -> torch.Tensor:
        return torch.sigmoid(self.background)

    def vertex_alpha(self) -> torch.Tensor:
        """One-step opacity at every vertex [X*Y*Z] (no interpolation)."""
        sigma = F.softplus(self.density + self.density_shift)
        return -torch.expm1(-sigma * (self.step_size / self.base_voxel_size))

    # --- maintenance --------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def update_occupancy(self, threshold: float | None = None) -> float:
        """Mark vertices whose neighbourhood holds matter (one-step opacity above `threshold`); returns the occupied fraction."""
        threshold = self.config.occupancy_alpha if threshold is None else threshold
        solid = (self.vertex_alpha() > threshold).float().view(1, 1, *self.shape)
        # a sample interpolates its 8 surrounding vertices: dilate so that no sample next to matter is skipped
        dilated = F.max_pool3d(solid, kernel_size=3, stride=1, padding=1)
        self.set_occupancy(dilated.view(-1) > 0)
        return float(self.occupancy.float().mean())

    @torch.no_grad()
    def resize(self, shape: tuple[int, int, int]) -> None:
        """Grow (or shrink) the grids to `shape` by trilinear resampling; the optimiser must be rebuilt afterwards."""
        def resample(table: torch.Tensor) -> torch.Tensor:
            columns = table.reshape(table.shape[0], -1)
            grid = columns.t().reshape(1, columns.shape[1], *self.shape)
            out = F.interpolate(grid, size=shape, mode="trilinear", align_corners=True)
            return out.reshape(columns.shape[1], -1).t().reshape(-1, *table.shape[1:]).contiguous()

        occ = F.interpolate(self.occupancy.float().view(1, 1, *self.shape), size=shape, mode="trilinear", align_corners=True)
        self.density = torch.nn.Parameter(resample(self.density.data))
        self.color = torch.nn.Parameter(resample(self.color.data))
        self.shape = tuple(int(s) for s in shape)
        self.set_occupancy(occ.view(-1) > 0)

    def describe(self) -> dict:
        return {"shape": list(self.shape), "voxel_size": self.voxel_size, "config": asdict(self.config),
                "occupied_fraction": float(self.occupancy.float().mean()),
                "space": None if self.space is None else self.space.to_dict()}
