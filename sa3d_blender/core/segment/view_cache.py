"""Per-view data SA3D reuses for every object: SAM embedding, frozen pixel->vertex rendering weights, depth and opacity.

The weights of view v form a sparse matrix A_v [H*W, X*Y*Z] (Σ over a pixel's samples of w·trilinear corner weight), so
rendering a mask grid V is `A_v @ V` and the SA3D update is `A_v.T @ g`. scipy CSR is used: on CPU with one thread it was
faster than torch's sparse CSR for both products (96 px view, 7e5 entries: 0.7 vs 1.6 ms render, 3.8 vs 4.8 ms splat).
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch

from ..atomic_files import atomic_write
from ..cache_folder import cache_root
from ..data.cameras import Cameras
from ..field.rendering import median_depth, render_image, render_rays
from ..field.voxel_field import VoxelField
from .embedding_cache import EmbeddingCache
from .segmenters import ImageEmbedding, Segmenter

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
FORMAT_VERSION = 4  # bump when the stored arrays change meaning (2: only the inner region's vertices; 3: surface;
# 4: no entries under MIN_ENTRY)
# Entries (sample weight x trilinear corner weight) under this are dropped. On the foggy fox field they were 36 % of a
# view's ~300 entries per pixel and together at most 0.0095 of any pixel's weight: a mask rendered through them moves
# by less than a hundredth, while memory, disk and every SA3D product shrink by a third.
MIN_ENTRY = 1e-4
# Rendering weights kept in memory at once (least recently used views are dropped and re-read from disk). A view costs
# about 8 bytes x 40-80 entries per pixel: 80-160 MB at the default 250 000-pixel working size.
DEFAULT_MEMORY_MB = 1500.0
# The disk cache of rendering weights is trimmed to this size whenever views are written (_trim_folder)
DEFAULT_DISK_MB = 8000.0
RAY_CHUNK = 8192


@dataclass
class ViewWeights:
    """Frozen rendering of one camera: A [H*W, X*Y*Z] CSR (int32 indices, float32 values), depths and opacity [H,W]."""

    matrix: sp.csr_matrix
    depth: np.ndarray  # float32 [H,W] expected ray distance t (world units) where opaque
    opacity: np.ndarray  # float32 [H,W] 1 - final transmittance
    # float32 [H,W] ray distance where half the light has stopped (inf where it never does): the first surface. The
    # expected depth lies behind it wherever the surface lets light through (an object's foggy inside, haze)
    surface: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.depth.shape

    @property
    def megabytes(self) -> float:
        m = self.matrix
        return (m.data.nbytes + m.indices.nbytes + m.indptr.nbytes) / 2**20

    def render(self, values: np.ndarray) -> np.ndarray:
        """Volume-render vertex values [X*Y*Z] (or [X*Y*Z, K]) into an image [H,W] (or [H,W,K])."""
        out = self.matrix @ values
        return out.reshape(*self.shape, *np.shape(values)[1:])

    def splat(self, pixel_values: np.ndarray) -> np.ndarray:
        """The transpose: pixel values [H,W] -> per-vertex sums Σ_pixels A[p, x]·g[p], float64 [X*Y*Z]."""
        return self.matrix.T @ np.asarray(pixel_values, dtype=np.float64).reshape(-1)

    def touched(self) -> np.ndarray:
        """bool [X*Y*Z]: the vertices at least one pixel of this view sees (the ones its SGD step would change)."""
        seen = np.zeros(self.matrix.shape[1], dtype=bool)
        seen[self.matrix.indices] = True  # 10x faster than np.unique on a view's ~1e6 entries
        return seen


@dataclass
class ViewData:
    index: int  # camera index in the dataset
    name: str
    weights: ViewWeights
    embedding: ImageEmbedding


def field_identity(field: VoxelField) -> str:
    """Hash of everything that changes the rendering weights: grid shape, box, config, density and occupancy."""
    digest = hashlib.sha256(f"v{FORMAT_VERSION}:{field.shape}:{field.config}:{field.base_voxel_size!r}:"
                            f"{field.space}".encode())
    for tensor in (field.bbox, field.density, field.occupancy):
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


def camera_identity(cameras: Cameras, i: int) -> str:
    digest = hashlib.sha256()
    for array in (cameras.c2w[i], cameras.fx[i], cameras.fy[i], cameras.cx[i], cameras.cy[i],
                  cameras.width[i], cameras.height[i], cameras.distortion[i], cameras.fisheye[i]):
        digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    return digest.hexdigest()[:24]


@torch.no_grad()
def compute_view_weights(field: VoxelField, cameras: Cameras, i: int) -> ViewWeights:
    """Render camera i once and keep each pixel's frozen sample weights spread onto the 8 grid corners.

    Only the inner region's vertices are kept: objects are segmented there, and a contracted field's shell (walls,
    sky) would otherwise double the entries and let a mask leak into the background.
    """
    origins, dirs = cameras.pixel_rays(i)
    h, w = int(cameras.height[i]), int(cameras.width[i])
    device = field.density.device
    n_vertices = int(np.prod(field.shape))
    inner = field.inner_vertices()
    blocks, depth, opacity, surface = [], [], [], []
    for s in range(0, len(origins), RAY_CHUNK):
        o = torch.as_tensor(origins[s:s + RAY_CHUNK], device=device)
        d = torch.as_tensor(dirs[s:s + RAY_CHUNK], device=device)
        out = render_rays(field, o, d, keep_samples=True)
        samples = out["samples"]
        keep = inner.index_select(0, samples.index.reshape(-1))
        rows = samples.ray_id[:, None].expand(-1, 8).reshape(-1)[keep].cpu().numpy()
        cols = samples.index.reshape(-1)[keep].cpu().numpy()
        vals = (samples.weights[:, None] * samples.corner_weights).reshape(-1)[keep].cpu().numpy().astype(np.float32)
        # coo -> csr sums the duplicate (pixel, vertex) pairs that neighbouring samples produce
        block = sp.coo_matrix((vals, (rows, cols)), shape=(len(o), n_vertices)).tocsr()
        block.data[block.data < MIN_ENTRY] = 0  # dropped by _compact
        blocks.append(block)
        depth.append(out["depth"].cpu().numpy())
        opacity.append(out["acc"].cpu().numpy())
        surface.append(median_depth(samples, len(o)).cpu().numpy())
    matrix = sp.vstack(blocks, format="csr")
    matrix = _compact(matrix)
    image = lambda parts: np.concatenate(parts).reshape(h, w).astype(np.float32)
    return ViewWeights(matrix, image(depth), image(opacity), image(surface))


def _compact(matrix: sp.csr_matrix) -> sp.csr_matrix:
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return sp.csr_matrix((matrix.data.astype(np.float32), matrix.indices.astype(np.int32), matrix.indptr.astype(np.int32)),
                         shape=matrix.shape)


class ViewCache:
    """Per-view data of one (field, cameras, segmenter) in memory and on disk: <folder>/view_weights/<field>_<camera>.npz
    and <folder>/embeddings (the shared EmbeddingCache)."""

    def __init__(self, field: VoxelField, cameras: Cameras, segmenter: Segmenter,
                 load_image: Callable[[int], np.ndarray | None], folder: str | Path | None = None,
                 memory_mb: float = DEFAULT_MEMORY_MB, disk_mb: float = DEFAULT_DISK_MB):
        """`load_image(i)` returns view i's photo, or None when the view has none (the field's render is embedded then).
        At most `memory_mb` of rendering weights stay in memory and `disk_mb` on disk (older files are deleted)."""
        self.field = field
        self.cameras = cameras
        self.segmenter = segmenter
        self.load_image = load_image
        self.folder = Path(folder) if folder is not None else cache_root()
        self.embeddings = EmbeddingCache(self.folder / "embeddings")
        self.field_id = field_identity(field)
        self._views: OrderedDict[int, ViewData] = OrderedDict()  # least recently used first
        self.memory_mb = memory_mb
        self.disk_mb = disk_mb

    def weights_path(self, i: int) -> Path:
        return self.folder / "view_weights" / f"{self.field_id}_{camera_identity(self.cameras, i)}.npz"

    def get(self, i: int, progress: Progress | None = None) -> ViewData:
        """View i's data, from memory, disk, or computed (rendering weights, then the SAM embedding)."""
        view = self._views.get(i)
        if view is None:
            weights = self._weights(i)
            image = self.load_image(i)
            if image is None:
                image = self._render_rgb(i)
            embedding = self.embeddings.get_or_compute(self.segmenter, image, progress)
            view = ViewData(i, self.cameras.names[i], weights, embedding)
            self._views[i] = view
            self._evict(keep=i)
        self._views.move_to_end(i)
        return view

    def memory_in_use_mb(self) -> float:
        return sum(v.weights.megabytes for v in self._views.values())

    def _evict(self, keep: int) -> None:
        while len(self._views) > 1 and self.memory_in_use_mb() > self.memory_mb:
            oldest = next(iter(self._views))
            if oldest == keep:
                break
            del self._views[oldest]

    def weights(self, i: int) -> ViewWeights:
        """Only the rendering weights of view i (no SAM embedding): for rendering masks into any camera."""
        view = self._views.get(i)
        return view.weights if view is not None else self._weights(i)

    def prepare(self, indices, progress: Progress | None = None) -> None:
        """Make sure every view in `indices` is computed and on disk; progress(fraction, message) before each view."""
        indices = [int(i) for i in indices]
        for k, i in enumerate(indices):
            if progress is not None:
                progress(k / len(indices), f"view {self.cameras.names[i]} ({k + 1}/{len(indices)})")
            self.get(i)
        message = (f"{len(indices)} views ready, rendering weights {self.memory_in_use_mb():.1f} MB in memory "
                   f"({len(self._views)} views, budget {self.memory_mb:.0f} MB)")
        log.info(message)
        if progress is not None:
            progress(1.0, message)

    def _weights(self, i: int) -> ViewWeights:
        path = self.weights_path(i)
        weights = _read_weights(path)
        if weights is None:
            weights = compute_view_weights(self.field, self.cameras, i)
            _write_weights(path, weights)
            _trim_folder(path.parent, self.disk_mb, path)
            log.debug("view %s: rendering weights %.1f MB (%d entries)", self.cameras.names[i], weights.megabytes,
                      weights.matrix.nnz)
        return weights

    def _render_rgb(self, i: int) -> np.ndarray:
        origins, dirs = self.cameras.pixel_rays(i)
        h, w = int(self.cameras.height[i]), int(self.cameras.width[i])
        return render_image(self.field, origins, dirs, h, w, device=self.field.density.device)["rgb"]


def _trim_folder(folder: Path, limit_mb: float, written: Path) -> None:
    """Bring `folder` within `limit_mb` after `written` was added: other fields' .npz files go first, oldest first,
    then `written` itself, never the earlier views of its own field. A capture whose views exceed the budget keeps
    its first views cached: evicting its own oldest ones, a rerun found none of them (the fox's 58 views of ~150 MB
    against 8 GB were all rendered again, 10 minutes, on every run)."""
    field = written.name.split("_")[0]
    files = list(folder.glob("*.npz"))
    total = sum(f.stat().st_size for f in files) / 1e6
    others = sorted((f for f in files if not f.name.startswith(field + "_")), key=lambda f: f.stat().st_mtime)
    for f in [*others, written]:
        if total <= limit_mb:
            break
        total -= f.stat().st_size / 1e6
        f.unlink(missing_ok=True)


def _read_weights(path: Path) -> ViewWeights | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            matrix = sp.csr_matrix((data["data"], data["indices"], data["indptr"]), shape=tuple(data["shape"]))
            return ViewWeights(matrix, data["depth"], data["opacity"], data["surface"])
    except Exception as exc:  # a damaged file is recomputed, whatever numpy or zipfile raise
        log.warning("view cache file %s is unreadable (%s); recomputing it", path, exc)
        return None


def _write_weights(path: Path, weights: ViewWeights) -> None:
    m = weights.matrix
    with atomic_write(path) as f:
        np.savez(f, data=m.data, indices=m.indices, indptr=m.indptr, shape=np.array(m.shape),
                 depth=weights.depth, opacity=weights.opacity, surface=weights.surface)
