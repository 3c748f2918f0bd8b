"""Turn one SA3D object (its mask grid) and the radiance field into a coloured mesh in the dataset's world coordinates."""

from __future__ import annotations

import numpy as np
import torch
import trimesh
from scipy import ndimage

from .mesh_extraction import ExtractionSettings, extract_mesh
from .voxel_field import VoxelField


def voxel_opacity(field: VoxelField) -> np.ndarray:
    """Opacity of a ray crossing one voxel at each vertex [X,Y,Z]: 1 - (1 - α_step)^(voxel / step).

    The one-step alpha depends on the marching step (half a voxel); per-voxel opacity does not, so the iso-level means
    the same thing whatever step the field was trained with.
    """
    with torch.no_grad():
        alpha = field.vertex_alpha().clamp(0.0, 1.0 - 1e-7).cpu().double().numpy()
    steps_per_voxel = field.voxel_size / field.step_size
    return (1.0 - (1.0 - alpha) ** steps_per_voxel).astype(np.float32).reshape(field.shape)


def solid_mask(mask_values: np.ndarray) -> np.ndarray:
    """V > 0, with enclosed cavities filled: no view sees inside a solid, so its interior has no votes (V = 0)."""
    return ndimage.binary_fill_holes(np.asarray(mask_values) > 0)


def field_colors(field: VoxelField, points: np.ndarray) -> np.ndarray:
    """The field's view-independent colour (zero view direction: only the SH band 0) at world points [P,3]."""
    with torch.no_grad():
        pts = torch.as_tensor(points, dtype=torch.float32, device=field.density.device)
        index, weights = field.lookup(pts)
        rgb = field.rgb(index, weights, torch.zeros_like(pts))
    return rgb.cpu().double().numpy()


def extract_object(field: VoxelField, mask_grid_values: np.ndarray,
                   settings: ExtractionSettings = ExtractionSettings()) -> trimesh.Trimesh:
    """Mesh of the field's surface (per-voxel opacity = settings.level) inside the object's 3-D mask, coloured.

    mask_grid_values: the object's V on the field's vertices ([X,Y,Z] or flat). SA3DError when the mask holds nothing.
    """
    values = np.asarray(mask_grid_values, dtype=np.float32).reshape(field.shape)
    # a 0/1 mask: any mask_threshold in [0, 1) keeps exactly the solid; objects live in the inner region only
    inner = field.inner_vertices().cpu().numpy().reshape(field.shape)
    mask = (solid_mask(values) & inner).astype(np.float32)
    bbox = field.bbox.cpu().numpy().astype(np.float64)  # field space: the world for a bounded field

    def to_world(points: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return field.to_world(torch.as_tensor(points, dtype=torch.float64)).numpy()

    mesh = extract_mesh(voxel_opacity(field), mask, bbox, lambda p: field_colors(field, to_world(p)), settings)
    if field.space is not None:
        mesh.vertices = to_world(mesh.vertices)
    return mesh
