"""Mesh extraction on analytic opacity fields whose true surfaces are known."""

import numpy as np
import pytest
import trimesh

from sa3d_blender.core.errors import SA3DError
from sa3d_blender.core.mesh.mesh_extraction import ExtractionSettings, extract_mesh, write_mesh
from sa3d_blender.core.metrics import mesh_distances

# Non-cubic, off-origin box: the voxel size differs per axis (3/63, 2.2/63, 2.5/63).
BBOX = np.array([[-1.3, 0.4, 2.0], [1.7, 2.6, 4.5]])
SHAPE = (64, 64, 64)
SPHERE_CENTRE, SPHERE_RADIUS = np.array([-0.3, 1.5, 3.2]), 0.6
BOX_CENTRE, BOX_HALF = np.array([0.95, 1.5, 3.3]), np.array([0.35, 0.4, 0.45])
FLOATER_CENTRE, FLOATER_RADIUS = np.array([1.0, 0.9, 2.4]), 0.07
DIAGONAL = float(np.linalg.norm(BBOX[1] - BBOX[0]))


def grid_points(shape=SHAPE, bbox=BBOX) -> np.ndarray:
    """World position of every grid vertex, [X,Y,Z,3], align_corners convention."""
    axes = [np.linspace(bbox[0, a], bbox[1, a], shape[a]) for a in range(3)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def sphere_sdf(points, centre, radius):
    return np.linalg.norm(points - centre, axis=-1) - radius


def box_sdf(points, centre, half):
    q = np.abs(points - centre) - half
    return np.linalg.norm(np.maximum(q, 0.0), axis=-1) + np.minimum(q.max(axis=-1), 0.0)


def opacity_from_sdf(sdf):
    # Smooth step about one voxel wide, opacity 0.5 exactly on the surface.
    return 1.0 / (1.0 + np.exp(sdf / 0.04))


def scene_opacity(with_floater=False):
    points = grid_points()
    sdf = np.minimum(sphere_sdf(points, SPHERE_CENTRE, SPHERE_RADIUS), box_sdf(points, BOX_CENTRE, BOX_HALF))
    if with_floater:
        sdf = np.minimum(sdf, sphere_sdf(points, FLOATER_CENTRE, FLOATER_RADIUS))
    return opacity_from_sdf(sdf)


def sphere_mask():
    """Signed SA3D-style mask values: positive a little beyond the sphere, negative elsewhere (on the box too)."""
    return SPHERE_RADIUS + 0.15 - np.linalg.norm(grid_points() - SPHERE_CENTRE, axis=-1)


def true_sphere():
    return trimesh.creation.icosphere(subdivisions=5, radius=SPHERE_RADIUS).apply_translation(SPHERE_CENTRE)


def test_masked_sphere_matches_the_analytic_sphere_and_the_box_is_gone():
    mesh = extract_mesh(scene_opacity(), sphere_mask(), BBOX, None)
    result = mesh_distances(mesh, true_sphere(), threshold=0.02 * DIAGONAL)
    assert result["fscore"] >= 0.95
    assert result["chamfer"] < 0.015  # under half the smallest voxel (0.035), sampling bias included
    assert mesh.is_watertight
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * SPHERE_RADIUS**3, rel=0.02)
    assert np.linalg.norm(mesh.vertices - SPHERE_CENTRE, axis=1).max() < SPHERE_RADIUS + 0.05


def test_without_mask_both_objects_are_meshed_in_world_coordinates():
    parts = extract_mesh(scene_opacity(), None, BBOX, None).split(only_watertight=True)
    assert len(parts) == 2
    box = max(parts, key=lambda part: part.bounds[0, 0])
    voxel = (BBOX[1] - BBOX[0]) / 63
    assert np.allclose(box.bounds, [BOX_CENTRE - BOX_HALF, BOX_CENTRE + BOX_HALF], atol=voxel.max() / 2)


def test_grid_vertices_map_to_world_with_align_corners():
    bbox = np.array([[1.0, 2.0, 3.0], [3.0, 6.0, 11.0]])  # 5 vertices per axis: voxel steps 0.5, 1, 2
    opacity = np.zeros((5, 5, 5))
    opacity[2, 2, 2] = 1.0  # at world (2, 4, 7)
    opacity[0, 0, 0] = 1.0  # at bbox min: the zero padding closes its surface half a step outside the grid
    settings = ExtractionSettings(min_part_fraction=0.0, smooth_iterations=0)  # the raw marching-cubes vertices
    vertices = np.unique(np.round(extract_mesh(opacity, None, bbox, None, settings).vertices, 9), axis=0)
    centre = np.array([2.0, 4.0, 7.0])
    half_steps = np.array([[0.25, 0, 0], [0, 0.5, 0], [0, 0, 1.0]])
    expected = np.concatenate([centre - half_steps, centre + half_steps, bbox[0] - half_steps, bbox[0] + half_steps])
    assert np.allclose(vertices, np.unique(expected, axis=0))


def test_floater_is_dropped_and_the_kept_surface_is_unchanged():
    clean = extract_mesh(scene_opacity(), None, BBOX, None)
    cleaned = extract_mesh(scene_opacity(with_floater=True), None, BBOX, None)
    assert np.allclose(np.sort(cleaned.vertices, axis=0), np.sort(clean.vertices, axis=0))

    kept = extract_mesh(scene_opacity(with_floater=True), None, BBOX, None, ExtractionSettings(min_part_fraction=0.0))
    assert len(kept.split(only_watertight=True)) == 3
    assert np.linalg.norm(kept.vertices - FLOATER_CENTRE, axis=1).min() < FLOATER_RADIUS + 0.02


def test_colours_come_from_color_fn_at_the_vertices():
    def color_fn(points):
        return (points - BBOX[0]) / (BBOX[1] - BBOX[0])

    mesh = extract_mesh(scene_opacity(), sphere_mask(), BBOX, color_fn)
    colours = mesh.visual.vertex_colors
    assert colours.dtype == np.uint8 and colours.shape == (len(mesh.vertices), 4)
    assert np.array_equal(colours[:, :3], np.round(color_fn(mesh.vertices) * 255).astype(np.uint8))
    assert np.all(colours[:, 3] == 255)

    grey = extract_mesh(scene_opacity(), sphere_mask(), BBOX, None).visual.vertex_colors
    assert np.all(grey == [128, 128, 128, 255])


def test_normals_face_outwards():
    mesh = extract_mesh(scene_opacity(), sphere_mask(), BBOX, None)
    outward = np.einsum("ij,ij->i", mesh.face_normals, mesh.triangles_center - SPHERE_CENTRE)
    assert np.all(outward > 0)
    assert mesh.volume > 0


def test_object_cut_by_the_grid_border_is_closed():
    centre_on_face = np.array([BBOX[0, 0], 1.5, 3.2])  # half the sphere lies outside the grid
    opacity = opacity_from_sdf(sphere_sdf(grid_points(), centre_on_face, 0.5))
    mesh = extract_mesh(opacity, None, BBOX, None)
    assert mesh.is_watertight
    assert mesh.bounds[0, 0] == pytest.approx(BBOX[0, 0] - 3 / 63 / 2, abs=1e-6)


def test_taubin_smoothing_flattens_voxel_steps_and_keeps_the_volume():
    staircase = (sphere_sdf(grid_points(), SPHERE_CENTRE, SPHERE_RADIUS) < 0).astype(np.float32)
    rough = extract_mesh(staircase, None, BBOX, None, ExtractionSettings(smooth_iterations=0))
    smooth = extract_mesh(staircase, None, BBOX, None, ExtractionSettings(smooth_iterations=20))
    radius_spread = [np.linalg.norm(m.vertices - SPHERE_CENTRE, axis=1).std() for m in (rough, smooth)]
    assert radius_spread[1] < 0.7 * radius_spread[0]
    assert smooth.volume == pytest.approx(rough.volume, rel=0.01)


def test_decimation_reaches_the_target_face_count():
    full = extract_mesh(scene_opacity(), sphere_mask(), BBOX, None)
    mesh = extract_mesh(scene_opacity(), sphere_mask(), BBOX, None, ExtractionSettings(target_faces=1000))
    assert len(full.faces) > 2000 and 900 <= len(mesh.faces) <= 1050
    assert mesh.bounds == pytest.approx(full.bounds, abs=0.02)  # the same shape, with fewer faces


def test_empty_mask_raises_with_advice():
    with pytest.raises(SA3DError, match=r"the 3D mask is empty: .* try a lower level"):
        extract_mesh(scene_opacity(), -np.ones(SHAPE), BBOX, None)
    with pytest.raises(SA3DError, match=r"highest masked opacity 0\.3"):
        extract_mesh(np.full(SHAPE, 0.3), None, BBOX, None)


@pytest.mark.parametrize("suffix", [".ply", ".glb", ".obj"])
def test_write_and_load_round_trip_keeps_vertices_and_colours(tmp_path, suffix):
    def color_fn(points):
        return (points - BBOX[0]) / (BBOX[1] - BBOX[0])

    mesh = extract_mesh(scene_opacity(), sphere_mask(), BBOX, color_fn)
    path = write_mesh(mesh, tmp_path / "out" / f"sphere{suffix}")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    loaded = trimesh.load(path, force="mesh", process=False)
    assert len(loaded.vertices) == len(mesh.vertices)
    assert len(loaded.faces) == len(mesh.faces)
    assert np.allclose(loaded.vertices, mesh.vertices, atol=1e-5)
    assert np.array_equal(loaded.visual.vertex_colors, mesh.visual.vertex_colors)


def test_unknown_mesh_format_is_refused_and_nothing_is_written(tmp_path):
    mesh = trimesh.creation.box()
    with pytest.raises(SA3DError, match=r"sphere\.stl: unsupported mesh format '\.stl'; use one of \.ply, \.glb, \.obj"):
        write_mesh(mesh, tmp_path / "sphere.stl")
    assert list(tmp_path.iterdir()) == []


def test_a_pocket_enclosed_by_matter_is_filled_not_meshed_inside_out():
    points = grid_points()
    solid = (sphere_sdf(points, SPHERE_CENTRE, SPHERE_RADIUS) < 0).astype(np.float32)
    pocket = sphere_sdf(points, SPHERE_CENTRE, 0.4 * SPHERE_RADIUS) < 0
    hollow = np.where(pocket, 0.0, solid).astype(np.float32)  # what noise inside an object looks like to the mesher
    mesh = extract_mesh(hollow, None, BBOX, None)
    full = extract_mesh(solid, None, BBOX, None)
    assert len(mesh.split(only_watertight=False)) == 1
    assert mesh.volume == pytest.approx(full.volume, rel=1e-6)


def test_a_speck_smaller_than_a_voxel_is_dropped_even_when_no_mass_rule_applies():
    opacity = (sphere_sdf(grid_points(), SPHERE_CENTRE, SPHERE_RADIUS) < 0).astype(np.float32)
    opacity[5, 5, 5] = 1.0  # one vertex crossing the level alone, far from the sphere
    settings = ExtractionSettings(min_part_fraction=0.0)
    mesh = extract_mesh(opacity, None, BBOX, None, settings)
    assert len(mesh.split(only_watertight=False)) == 1
    assert np.all(mesh.bounds[0] > SPHERE_CENTRE - SPHERE_RADIUS - 0.1)


def test_a_fragment_touching_the_object_only_at_a_corner_counts_as_a_part_of_its_own():
    """Marching cubes gives matter that touches only at a vertex its own surface: such a fragment (3 voxels across,
    far under the mass rule) is dropped, not kept as "connected" to the block."""
    opacity = np.zeros(SHAPE, np.float32)
    opacity[10:30, 10:30, 10:30] = 1.0
    opacity[30:33, 30:33, 30:33] = 1.0  # its corner (30, 30, 30) meets the block's (29, 29, 29)
    mesh = extract_mesh(opacity, None, BBOX, None, ExtractionSettings(smooth_iterations=0))
    assert len(mesh.split(only_watertight=False)) == 1
    assert np.all(mesh.vertices <= grid_points().reshape(*SHAPE, 3)[30, 30, 30] + 1e-9)
