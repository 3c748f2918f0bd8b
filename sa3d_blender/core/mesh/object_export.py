"""Turn one SA3D object (its mask grid) and the radiance field into a coloured mesh in the dataset's world coordinates."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
import trimesh
from scipy import ndimage

from ..data.cameras import Cameras
from ..data.image_io import write_png
from ..errors import SA3DError
from ..field.local_refinement import LocalField, RefineSettings, field_scale_at, refine, world_box
from ..field.trilinear import gather
from ..field.voxel_field import VoxelField
from .interior import drop_unseen_parts, fill_unseen, visible_views, well_seen, with_unseen_inside
from .mesh_extraction import ExtractionSettings, extract_mesh, write_mesh
from .support_plane import RING_VOXELS, cap_opacity, find_support, height_above_cut
from .texture import Photo, TexturedMesh, TextureSettings, bake_texture
from .visual_hull import silhouette_fill


# The surface is where a ray's opacity over this fraction of the inner region's diagonal reaches the extraction level.
# Tied to the region, not to the voxel: the same object gets the same surface whatever the grid's resolution (a
# per-voxel level left objects hollow once the voxels shrank), and to the scene's scale, so no unit is assumed.
SURFACE_LENGTH_FRACTION = 0.02


def surface_length(field: VoxelField) -> float:
    """SURFACE_LENGTH_FRACTION of the inner region's diagonal, in field units."""
    inner = field.inner_bbox()
    return SURFACE_LENGTH_FRACTION * float(np.linalg.norm(inner[1] - inner[0]))


def surface_opacity(field: VoxelField, length: float | None = None) -> np.ndarray:
    """Opacity [X,Y,Z] at each vertex of a ray crossing `length` field units (default surface_length(field)):
    1 - (1 - α_step)^(length / step), so the level means the same thing whatever step or voxel size was trained."""
    with torch.no_grad():
        alpha = field.vertex_alpha().clamp(0.0, 1.0 - 1e-7).cpu().double().numpy()
    length = surface_length(field) if length is None else length
    return (1.0 - (1.0 - alpha) ** (length / field.step_size)).astype(np.float32).reshape(field.shape)


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


def object_mask(field: VoxelField, mask_grid_values: np.ndarray, level: float = ExtractionSettings.level) -> np.ndarray:
    """bool [X,Y,Z]: the object's solid mask on the field's grid, in the inner region (and, forward-facing, not
    deeper than the object is: _within_object_depth)."""
    values = np.asarray(mask_grid_values, dtype=np.float32).reshape(field.shape)
    # a 0/1 mask: any mask_threshold in [0, 1) keeps exactly the solid; objects live in the inner region only
    mask = solid_mask(values) & field.inner_vertices().cpu().numpy().reshape(field.shape)
    if field.space is not None and field.space.kind == "ndc" and mask.any():
        mask = _within_object_depth(field, mask, surface_opacity(field) > level)
    return mask


def extract_object(field: VoxelField, mask_grid_values: np.ndarray,
                   settings: ExtractionSettings = ExtractionSettings(),
                   photos: Sequence[Photo] | None = None, local: LocalField | None = None,
                   others: np.ndarray | None = None,
                   silhouettes: Sequence[np.ndarray | None] | None = None,
                   visibility: np.ndarray | None = None) -> trimesh.Trimesh:
    """Mesh of the field's surface (surface_opacity = settings.level) inside the object's 3-D mask, coloured.

    mask_grid_values: the object's V on the field's vertices ([X,Y,Z] or flat); photos: the views with the field's
    depth, which make what none of them sees solid and drop the parts none of them sees (interior.py), and tell the
    support's top side (support_plane.py);
    local: the object's refined field (refine_object), meshed instead of the scene field where the object is;
    others: bool [X,Y,Z] on the field's grid, what the other segmented objects hold (SceneSegmenter.other_objects):
    the unseen inside the mask gains is never theirs; silhouettes: the object's mask in each photo (at its depth
    size), which let the visual hull stand where the field dents a uniformly coloured face (visual_hull.py);
    visibility: float [X,Y,Z] on the field's grid, how much of each vertex the view that sees it best sees
    (SceneSegmenter.visibility): the mask loses the matter no view sees well before its inside is filled
    (interior.well_seen). SA3DError when the mask holds nothing.
    """
    mask = object_mask(field, mask_grid_values, settings.level)
    photos = list(photos) if photos is not None else None
    # forward-facing views never see an object's back: it has no inside to fill (nor to take what is hidden out of:
    # flower and fern lost half their mesh's area to it and came out in more pieces)
    surrounded = bool(photos) and not (field.space is not None and field.space.kind == "ndc") and bool(mask.any())
    positions = _world_positions(field) if surrounded else None
    scene_opacity = surface_opacity(field)
    if surrounded:
        if visibility is not None:
            mask = well_seen(mask, scene_opacity > settings.level, np.asarray(visibility).reshape(field.shape))
        tolerance = FILL_TOLERANCE_VOXELS * field.voxel_size * field_scale_at(field, _mask_centre(field, mask))
        mask = with_unseen_inside(mask, positions, photos, tolerance, others)
    if local is None:
        target, opacity = field, scene_opacity
    else:
        target = local.field
        mask = _resample_mask(field, mask, target)
        opacity = surface_opacity(target, surface_length(field) * local.scale)
        if surrounded:
            positions = _world_positions(target)
    if surrounded and silhouettes is not None:
        # before the support cut, which trims what the hull adds at the floor (an outline holding the shadow)
        target_others = None if others is None or target is field else _resample_mask(field, others, target)
        hull = silhouette_fill(mask & (opacity > settings.level), positions, photos, silhouettes, tolerance,
                               target_others)
        mask, opacity = mask | hull, np.where(hull, np.float32(1.0), opacity)
    cap = None
    if settings.cut_support and mask.any():
        inner = target.inner_vertices().cpu().numpy().reshape(target.shape)
        mask, cap = _without_support(target, mask, np.where(inner, opacity, 0.0), settings.level, photos)
    if surrounded and mask.any():
        opacity = fill_unseen(opacity, mask, positions, photos, tolerance, settings.level)
    if cap is not None:
        opacity = np.minimum(opacity, cap)  # after the fill, which makes the unseen vertices under the base opaque
    bbox = target.bbox.cpu().numpy().astype(np.float64)  # field space: the world for a bounded field

    def to_world(points: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return target.to_world(torch.as_tensor(points, dtype=torch.float64)).numpy()

    mesh = extract_mesh(opacity, mask.astype(np.float32), bbox, lambda p: field_colors(target, to_world(p)), settings)
    if target.space is not None:
        mirrored = _mirrors(target, mesh.vertices.mean(axis=0))
        mesh.vertices = to_world(mesh.vertices)
        if mirrored:
            mesh.faces = np.ascontiguousarray(mesh.faces[:, ::-1])
    return drop_unseen_parts(mesh, photos, tolerance) if surrounded else mesh


def _mirrors(field: VoxelField, point: np.ndarray) -> bool:
    """Whether the map from field space to the world mirrors space at `point` (field units). NDC does (a forward-facing
    field's z' grows away from the camera, world z towards it), which turns the faces of a mesh made in field space
    inside out: fern's mesh had inward normals, so its texture took only 2.9 % of its texels from the photos (a
    texel counts for a photo that faces it)."""
    step = 1e-4 * float((field.bbox[1] - field.bbox[0]).min())
    corners = torch.as_tensor(np.vstack([point, point + step * np.eye(3)]), dtype=torch.float64)
    with torch.no_grad():
        world = field.to_world(corners)
    return bool(torch.linalg.det(world[1:] - world[0]) < 0)


# A vertex is seen empty by a view when it lies this many scene voxels in front of the rendered surface there: the
# expected depth of a surface a voxel or two thick sits inside it
FILL_TOLERANCE_VOXELS = 1.5


def _world_positions(field: VoxelField) -> np.ndarray:
    with torch.no_grad():
        return field.to_world(field.vertex_positions().double()).cpu().numpy().reshape(*field.shape, 3)


def _mask_centre(field: VoxelField, mask: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        centre = field.vertex_positions()[torch.from_numpy(mask.reshape(-1))].double().mean(0, keepdim=True)
        return field.to_world(centre).cpu().numpy()[0]


def refine_object(field: VoxelField, mask_grid_values: np.ndarray, cameras: Cameras, views, load_image,
                  settings: RefineSettings = RefineSettings()) -> LocalField:
    """The object's LocalField (local_refinement.py) over the box of its mask, trained on the views' photos."""
    # the box of the matter in the mask: the mask itself reaches into the empty space and the floor around it
    matter = object_mask(field, mask_grid_values) & (surface_opacity(field) > ExtractionSettings.level)
    if not matter.any():
        raise SA3DError("the 3D mask holds no opaque matter: there is no object to refine")
    return refine(field, world_box(field, matter, settings.margin), cameras, views, load_image, settings)


def _resample_mask(field: VoxelField, mask: np.ndarray, target: VoxelField) -> np.ndarray:
    """The scene grid's bool mask at the target grid's vertices (trilinear, >= 0.5: its boundary at the scene
    voxels' midpoints, not in steps of a scene voxel)."""
    with torch.no_grad():
        index, weights = field.lookup(target.to_world(target.vertex_positions()))
        values = gather(torch.from_numpy(mask.reshape(-1).astype(np.float32)).to(index.device), index, weights)
    return (values >= 0.5).cpu().numpy().reshape(target.shape)


def texture_path(mesh_path: Path) -> Path:
    """Where export_object writes a mesh's photo texture: <stem>_texture.png beside it."""
    return Path(mesh_path).with_name(f"{Path(mesh_path).stem}_texture.png")


def export_object(field: VoxelField, mask_grid_values: np.ndarray, path: Path,
                  settings: ExtractionSettings = ExtractionSettings(), photos: Iterable[Photo] | None = None,
                  texture: TextureSettings | None = TextureSettings(), local: LocalField | None = None,
                  others: np.ndarray | None = None, silhouettes: Sequence[np.ndarray | None] | None = None,
                  visibility: np.ndarray | None = None) -> tuple[trimesh.Trimesh, TexturedMesh | None]:
    """extract_object into `path` (.ply, .glb or .obj), filled and cut with the photos' help. With photos and
    `texture` the mesh also gets its photo texture, written as texture_path(path): GLB and OBJ carry it, a PLY keeps
    the vertex colours; `others`, `silhouettes` and `visibility` as in extract_object."""
    path = Path(path)
    photos = list(photos) if photos is not None else None
    mesh = extract_object(field, mask_grid_values, settings, photos, local, others, silhouettes, visibility)
    textured = None
    if photos is not None and texture is not None:
        textured = bake_texture(mesh, photos, texture)
        write_png(texture_path(path), textured.image)
    write_mesh(textured.trimesh() if textured is not None and path.suffix.lower() != ".ply" else mesh, path)
    return mesh, textured


# A forward-facing (NDC) grid reaches to infinity, and the far NDC slab behind an object is seen through the same
# pixels: the mask can hold bits of it, which become mesh parts millions of units away (fern: 2.5e7). Nothing of an
# object lies this many times deeper than its own median depth.
MAX_DEPTH_RATIO = 3.0


def _within_object_depth(field: VoxelField, mask: np.ndarray, opaque: np.ndarray) -> np.ndarray:
    """The NDC mask without vertices deeper than MAX_DEPTH_RATIO times the object's median depth."""
    depth = field.space.camera_depth(field.vertex_positions()[:, 2].numpy().reshape(field.shape))
    solid = mask & opaque
    if not solid.any():
        return mask
    return mask & (depth <= MAX_DEPTH_RATIO * float(np.median(depth[solid])))


def _without_support(field: VoxelField, mask: np.ndarray, opacity: np.ndarray, level: float,
                     photos: Sequence[Photo] | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(mask, cap): when the object's surroundings show a plane it rests on (support_plane.py), the mask without what
    lies more than a vertex below the cut, and the most opacity each vertex may keep (cap_opacity, None without a
    plane); computed on the grid around the mask only. The photos tell "up" (towards them) and which of the mask's
    matter is the object: what they see of it (the floor slab under a flat tray is most of its opaque mask, and it is
    never seen)."""
    lo = np.maximum(np.argwhere(mask).min(axis=0) - RING_VOXELS - 2, 0)
    hi = np.minimum(np.argwhere(mask).max(axis=0) + RING_VOXELS + 3, field.shape)
    crop = tuple(slice(a, b) for a, b in zip(lo, hi))
    with torch.no_grad():
        axes = [field.vertex_positions().reshape(*field.shape, 3)[..., d][crop] for d in range(3)]
        positions = field.to_world(torch.stack(axes, -1).reshape(-1, 3).double()).numpy().reshape(*axes[0].shape, 3)
    # world size of a voxel at the object: the median step between neighbouring vertices inside the mask
    inside = mask[crop][:-1]
    voxel = float(np.median(np.linalg.norm(positions[1:] - positions[:-1], axis=-1)[inside]))
    cameras, seen = None, None
    if photos:
        cameras = np.array([p.depth_cameras.c2w[p.index, :3, 3] for p in photos])
        matter = mask[crop] & (opacity[crop] > level)
        seen = np.zeros_like(matter)
        seen[matter] = visible_views(positions[matter], photos, FILL_TOLERANCE_VOXELS * voxel) > 0
    plane = find_support(mask[crop], opacity[crop], level, positions, voxel, cameras, seen)
    if plane is None:
        return mask, None
    above = height_above_cut(mask[crop], positions, plane, voxel, opacity[crop] > level)
    cut, cap = mask.copy(), np.ones(mask.shape, dtype=np.float32)
    cut[crop] &= above > -1.0
    cap[crop] = cap_opacity(above, level)
    return cut, cap
