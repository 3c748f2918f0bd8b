"""Object extraction on the real tiny-scene field: a mask around the duck gives the duck's surface, in its colours."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from sa3d_blender.core.data.cameras import Cameras
from sa3d_blender.core.data.datasets import load_dataset
from sa3d_blender.core.field.field_checkpoint import load_field
from sa3d_blender.core.field.voxel_field import FieldConfig, VoxelField
from sa3d_blender.core.mesh.mesh_extraction import ExtractionSettings
from sa3d_blender.core.mesh.object_export import SURFACE_LENGTH_FRACTION, extract_object, solid_mask, surface_opacity
from sa3d_blender.core.mesh.support_plane import BASE_VOXELS
from sa3d_blender.core.mesh.texture import Photo
from sa3d_blender.core.metrics import connected_parts, mesh_distances
from sa3d_blender.core.segment.view_cache import compute_view_weights
from test_datasets import look_at
from test_view_cache import tiny_field_path


@pytest.fixture(scope="module")
def field_and_dataset(tiny_scene):
    field, _, _ = load_field(tiny_field_path(tiny_scene))
    return field, load_dataset(tiny_scene)


def box_mask(field, lo, hi) -> np.ndarray:
    """+1 on the vertices inside [lo, hi] (world), -1 elsewhere: a mask grid as SA3D would give for that region."""
    positions = field.to_world(field.vertex_positions()).numpy()
    inside = np.all((positions >= lo) & (positions <= hi), axis=1)
    return np.where(inside, 1.0, -1.0).astype(np.float32).reshape(field.shape)


def test_duck_mask_extracts_the_duck_surface_in_world_coordinates(field_and_dataset):
    field, dataset = field_and_dataset
    truth = trimesh.load(dataset.ground_truth.object("duck").mesh_path, force="mesh")
    voxel = field.voxel_size * field.space.half  # world size of the inner region's voxels
    margin = 1.5 * voxel
    # start the box just above the ground plane so the mask holds the duck and not the floor under it
    lo = truth.bounds[0] + [-margin, -margin, voxel]
    mesh = extract_object(field, box_mask(field, lo, truth.bounds[1] + margin))
    # a tenth of the duck's own diagonal (3.5 cm; the 1 cm voxels of this small test field cannot do better)
    threshold = 0.1 * np.linalg.norm(truth.bounds[1] - truth.bounds[0])
    scores = mesh_distances(mesh, truth, threshold)
    assert scores["fscore"] >= 0.8, scores
    assert np.all(mesh.bounds[0] >= lo - voxel) and np.all(mesh.bounds[1] <= truth.bounds[1] + 2 * margin)

    # vertex colours are the duck's colour as photographed (yellow), up to shading: the field's colour is an average
    # over views and the photo's median includes highlights (measured: field (0.91, 0.73, 0.00) vs photo (1.0, 0.94, 0.0))
    view = int(dataset.train[0])
    pixels = dataset.load_image(view)[dataset.ground_truth.load_mask(view) == dataset.ground_truth.object("duck").index]
    colours = np.median(mesh.visual.vertex_colors[:, :3] / 255.0, axis=0)
    assert np.abs(colours - np.median(pixels, axis=0)).max() < 0.25, colours
    assert colours[0] > 0.6 and colours[2] < 0.3, colours


def test_surface_opacity_is_the_opacity_over_a_fixed_fraction_of_the_region():
    field = VoxelField(np.array([[0.0, 0, 0], [1, 1, 1]]), (3, 3, 3), FieldConfig(step_ratio=0.5))
    with torch.no_grad():
        field.density.fill_(2.0)
    step_alpha = float(field.vertex_alpha()[0].detach())
    assert 0.0 < step_alpha < 1.0
    # light passes each step of the surface length with probability (1 - alpha)
    steps = SURFACE_LENGTH_FRACTION * np.sqrt(3.0) / field.step_size
    np.testing.assert_allclose(surface_opacity(field), 1 - (1 - step_alpha) ** steps, rtol=1e-5)


@pytest.mark.parametrize("resolution", [24, 72])
def test_a_solid_ball_meshes_whole_at_any_grid_resolution(resolution):
    """The same physical density on a coarse and a 3x finer grid gives one closed ball of the same size: a per-voxel
    level made fine grids' objects hollow shells in dozens of pieces."""
    bbox = np.array([[-1.0, -1, -1], [1, 1, 1]])
    field = VoxelField(bbox, (resolution,) * 3, FieldConfig(), base_voxel_size=2.0 / 47)
    inside = field.vertex_positions().norm(dim=-1) < 0.5
    with torch.no_grad():
        # sigma = 12 per unit: a fog whose opacity over one coarse voxel (0.087) is 0.65, over a fine one 0.30
        raw = torch.log(torch.expm1(torch.tensor(12.0 * field.base_voxel_size)))
        field.density.copy_(torch.where(inside, raw, torch.tensor(-20.0)) - field.density_shift)
    mesh = extract_object(field, np.ones(field.shape, np.float32))
    assert len(mesh.split(only_watertight=False)) == 1 and mesh.is_watertight
    radius = (3 * mesh.volume / (4 * np.pi)) ** (1 / 3)
    assert abs(radius - 0.5) < 0.06, radius


def test_solid_mask_fills_the_unseen_inside_of_an_object():
    values = -np.ones((7, 7, 7), np.float32)
    values[1:6, 1:6, 1:6] = 1.0
    values[2:5, 2:5, 2:5] = 0.0  # inside: no view sees it, so it has no votes
    solid = solid_mask(values)
    assert solid[1:6, 1:6, 1:6].all() and solid.sum() == 125


def _solid_field(inside) -> VoxelField:
    """A bounded 64^3 field over [-1, 1]^3, opaque where inside(x, y, z) holds."""
    field = VoxelField(np.array([[-1.0, -1, -1], [1, 1, 1]]), (64, 64, 64), FieldConfig())
    p = field.vertex_positions()
    with torch.no_grad():
        field.density.copy_(torch.where(inside(p[:, 0], p[:, 1], p[:, 2]), 10.0, -20.0) - field.density_shift)
    return field


def _box_values(field, lo, hi) -> np.ndarray:
    p = field.vertex_positions().numpy()
    return np.where(np.all((p >= lo) & (p <= hi), axis=1), 1.0, -1.0).astype(np.float32).reshape(field.shape)


def test_an_object_is_cut_off_the_floor_it_rests_on():
    """A block on a 20-cm-thick floor, its mask reaching 15 cm into the floor as SA3D's does (the floor under an
    object is never seen): the mesh starts at the floor's top, not inside the slab, unless the cut is turned off."""
    field = _solid_field(lambda x, y, z: ((z > -0.5) & (z < -0.3)) | ((x.abs() < 0.2) & (y.abs() < 0.2) & (z < 0.1)))
    values = _box_values(field, [-0.25, -0.25, -0.45], [0.25, 0.25, 0.15])
    voxel = 2.0 / 63
    cut = extract_object(field, values)
    # the base keeps BASE_VOXELS under the floor's level crossing (fields' floors are fuzzy), no more
    assert -0.3 - BASE_VOXELS * voxel <= cut.bounds[0, 2] <= -0.3 + 1.5 * voxel, cut.bounds
    np.testing.assert_allclose(cut.bounds[:, :2], [[-0.2, -0.2], [0.2, 0.2]], atol=1.5 * voxel)
    uncut = extract_object(field, values, ExtractionSettings(cut_support=False))
    assert uncut.bounds[0, 2] < -0.4  # the slab the mask holds
    assert cut.is_watertight  # the cut is capped: the block stands on a flat base


def test_the_base_follows_the_floor_between_vertex_layers():
    """A block on floors a quarter of a voxel apart (a smooth floor, its level crossing between vertex layers): the
    base moves with the floor, not in whole voxels, and stays BASE_VOXELS below the floor's level crossing."""
    voxel = 2.0 / 63
    bases = []
    for k in range(5):
        top = -0.3 + 0.25 * k * voxel
        floor = lambda z: ((top - z) / voxel * 2.0).clamp(-20.0, 10.0)  # opacity 0.5 half a voxel above `top`
        block = lambda x, y: (x.abs() < 0.2) & (y.abs() < 0.2)
        field = _solid_field(lambda x, y, z: (z > -0.5) & (z < 0.1) & block(x, y))
        p = field.vertex_positions()
        with torch.no_grad():
            slab = (p[:, 2] > -0.5) & ~block(p[:, 0], p[:, 1])
            field.density[slab] = floor(p[slab, 2]) - field.density_shift
        values = _box_values(field, [-0.25, -0.25, -0.45], [0.25, 0.25, 0.15])
        bases.append(extract_object(field, values).bounds[0, 2])
    steps = np.diff(bases) / voxel
    # measured 0.21-0.29 (the floor's level crossing moves by about as much); cutting whole vertices moved the base
    # in steps of 0 or 1 voxel
    np.testing.assert_allclose(steps, 0.25, atol=0.1, err_msg=str(steps))
    np.testing.assert_allclose(bases[0], -0.3 + (0.5 - BASE_VOXELS) * voxel, atol=0.1 * voxel)


def _photos_around(field: VoxelField, height: float = 2.0, n: int = 8, size: int = 48) -> list[Photo]:
    """n views on a ring at `height` looking at the origin, with the field's first surface rendered for each."""
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c2w = np.stack([look_at((2.5 * np.cos(a), 2.5 * np.sin(a), height)) for a in angles])
    cameras = Cameras(c2w, [size] * n, [size] * n, [size / 2] * n, [size / 2] * n, [size] * n, [size] * n,
                      [f"v{k}" for k in range(n)], [None] * n)
    weights = [compute_view_weights(field, cameras, i) for i in range(n)]
    return [Photo(i, np.zeros((size, size, 3), np.float32), cameras, w.depth, cameras, w.surface)
            for i, w in enumerate(weights)]


def test_the_cut_follows_the_floor_not_a_taller_neighbour_beside_the_object():
    """A block on the floor with a taller block pressed against its side, both inside the ring around the mask (as
    the demo's ball and cone are): seen from cameras above, the support is the floor, not the neighbour's side (which
    cut the ball in half) nor its top."""
    block = lambda x, y, z: (x.abs() < 0.2) & (y.abs() < 0.2) & (z < 0.1)
    neighbour = lambda x, y, z: (x > 0.22) & (x < 0.5) & (y.abs() < 0.3) & (z < 0.5)
    field = _solid_field(lambda x, y, z: ((z > -0.5) & (z < -0.3)) | block(x, y, z) | neighbour(x, y, z))
    values = _box_values(field, [-0.25, -0.25, -0.45], [0.21, 0.25, 0.15])
    voxel = 2.0 / 63
    cut = extract_object(field, values, photos=_photos_around(field))
    # the base keeps BASE_VOXELS under the floor's level crossing (fields' floors are fuzzy), no more
    assert -0.3 - BASE_VOXELS * voxel <= cut.bounds[0, 2] <= -0.3 + 1.5 * voxel, cut.bounds
    np.testing.assert_allclose(cut.bounds[:, :2], [[-0.2, -0.2], [0.2, 0.2]], atol=1.5 * voxel)


def test_the_inside_no_view_sees_is_filled_whatever_holes_the_shell_has():
    """A block whose walls are opaque but whose inside is empty with opaque specks in it, open through a hole in its
    bottom wall (fields leave objects' insides unconstrained): without the views the mesh has inner walls around the
    inside and every speck; with them the inside is solid and the mesh is the block alone."""
    outer = lambda x, y, z: (x.abs() < 0.4) & (y.abs() < 0.4) & (z.abs() < 0.4)
    inner = lambda x, y, z: (x.abs() < 0.32) & (y.abs() < 0.32) & (z.abs() < 0.32)
    hole = lambda x, y, z: (x.abs() < 0.1) & (y.abs() < 0.1) & (z < 0)
    field = _solid_field(lambda x, y, z: outer(x, y, z) & ~(inner(x, y, z) | hole(x, y, z)))
    p = field.vertex_positions()
    specks = inner(p[:, 0], p[:, 1], p[:, 2]) & (torch.rand(len(p), generator=torch.Generator().manual_seed(0)) < 0.05)
    with torch.no_grad():
        field.density[specks] = 10.0 - field.density_shift
    # the mask ends at the block's bottom, as a support cut would leave it; the views look from above
    values = _box_values(field, [-0.5, -0.5, -0.42], [0.5, 0.5, 0.5])
    settings = ExtractionSettings(cut_support=False)
    hollow = extract_object(field, values, settings)
    solid = extract_object(field, values, settings, photos=_photos_around(field, height=1.5))
    block = extract_object(_solid_field(outer), values, settings)  # the same block, solid throughout
    assert hollow.area > 1.5 * block.area, (hollow.area, block.area)  # the inner walls and the specks' shells
    assert connected_parts(solid) == 1 and solid.is_watertight
    assert abs(solid.area - block.area) < 0.04 * block.area, (solid.area, block.area)
    assert abs(solid.volume - block.volume) < 0.02 * block.volume, (solid.volume, block.volume)


def test_an_object_with_nothing_under_it_is_not_cut():
    """A floating block (empty space all around the mask) keeps its whole mask."""
    field = _solid_field(lambda x, y, z: (x.abs() < 0.2) & (y.abs() < 0.2) & (z.abs() < 0.2))
    values = _box_values(field, [-0.25, -0.25, -0.25], [0.25, 0.25, 0.25])
    with_cut = extract_object(field, values)
    without = extract_object(field, values, ExtractionSettings(cut_support=False))
    np.testing.assert_allclose(with_cut.bounds, without.bounds)


def test_a_forward_facing_mask_does_not_reach_to_infinity():
    """NDC grid: an object at depth ~2 and fog at the far end of the box (z' near 1, depth ~100), both in the mask as
    the far slab seen through the object's pixels can be: the mesh is the object, not a part 100 units away."""
    from sa3d_blender.core.field.field_space import NDCSpace

    space = NDCSpace(pose=tuple(map(tuple, np.eye(4))), near=1.0, sx=2.0, sy=2.0, xy_extent=(1.0, 1.0))
    field = VoxelField(space.field_bbox(), (48, 48, 48), FieldConfig(), space=space)
    q = field.vertex_positions()
    near_object = (q[:, 0].abs() < 0.3) & (q[:, 1].abs() < 0.3) & (q[:, 2] > -0.1) & (q[:, 2] < 0.1)  # depth 1.8-2.2
    far_fog = (q[:, 0].abs() < 0.3) & (q[:, 1].abs() < 0.3) & (q[:, 2] > 0.96)  # depth > 50
    with torch.no_grad():
        field.density.copy_(torch.where(near_object | far_fog, 10.0, -20.0) - field.density_shift)
    mesh = extract_object(field, np.ones(field.shape, np.float32))
    depth = -mesh.vertices[:, 2]
    assert depth.min() > 1.5 and depth.max() < 3.0, (depth.min(), depth.max())


def test_a_forward_facing_mesh_faces_out_of_the_object():
    """NDC mirrors space (z' grows away from the camera): the mesh made on its grid must still have its faces' normals
    pointing out of the object in the world, towards the camera on the side the camera sees."""
    from sa3d_blender.core.field.field_space import NDCSpace

    space = NDCSpace(pose=tuple(map(tuple, np.eye(4))), near=1.0, sx=2.0, sy=2.0, xy_extent=(1.0, 1.0))
    field = VoxelField(space.field_bbox(), (48, 48, 48), FieldConfig(), space=space)
    q = field.vertex_positions()
    block = (q[:, 0].abs() < 0.3) & (q[:, 1].abs() < 0.3) & (q[:, 2].abs() < 0.1)  # depth 1.8-2.2, camera at 0
    with torch.no_grad():
        field.density.copy_(torch.where(block, 10.0, -20.0) - field.density_shift)
    mesh = extract_object(field, np.ones(field.shape, np.float32), ExtractionSettings(smooth_iterations=0))
    assert mesh.is_watertight and mesh.volume > 0
    front = mesh.triangles_center[:, 2] > mesh.bounds[1, 2] - 0.01  # the face nearest the camera, at z ~ -1.8
    assert front.sum() > 10 and np.all(mesh.face_normals[front, 2] > 0.9)


def test_parts_no_view_sees_are_dropped_and_seen_ones_kept():
    """A block's mesh with a small closed shell inside it (a void the fill missed) and one beside it: the views see
    the block and the one beside it, never the inner one."""
    from sa3d_blender.core.mesh.interior import drop_unseen_parts

    field = _solid_field(lambda x, y, z: ((x.abs() < 0.3) & (y.abs() < 0.3) & (z.abs() < 0.3))
                         | ((x - 0.6).abs() < 0.06) & (y.abs() < 0.06) & (z.abs() < 0.06))
    block = trimesh.creation.box((0.6, 0.6, 0.6))
    inside = trimesh.creation.box((0.1, 0.1, 0.1))
    beside = trimesh.creation.box((0.12, 0.12, 0.12))
    beside.apply_translation((0.6, 0.0, 0.0))
    mesh = trimesh.util.concatenate([block, inside, beside])
    photos = _photos_around(field, height=1.5) + _photos_around(field, height=-1.5)
    kept = drop_unseen_parts(mesh, photos, tolerance=2.0 / 63)
    assert len(kept.split(only_watertight=False)) == 2
    np.testing.assert_allclose(kept.area, block.area + beside.area)


def test_the_unseen_inside_of_an_open_shell_mask_is_part_of_the_object():
    """A ball resting on a floor, opaque throughout as a field's objects are, whose mask is only a shell around its
    surface (SA3D's votes reach what the views see) opened at the bottom where it touches the floor: the inside
    joins the mask, so the mesh is the ball's surface without an inner shell. A bowl's open inside, seen by the
    views, stays empty."""
    from sa3d_blender.core.mesh.interior import enclosed, with_unseen_inside

    ball = lambda x, y, z: x ** 2 + y ** 2 + z ** 2 < 0.3 ** 2
    field = _solid_field(lambda x, y, z: ((z > -0.5) & (z < -0.3)) | ball(x, y, z))
    p = field.vertex_positions().numpy()
    r = np.linalg.norm(p, axis=1)
    opening = (np.abs(p[:, 0]) < 0.1) & (np.abs(p[:, 1]) < 0.1) & (p[:, 2] < -0.15)
    values = np.where((r > 0.22) & (r < 0.36) & (p[:, 2] > -0.29) & ~opening, 1.0, -1.0).astype(np.float32).reshape(field.shape)
    settings = ExtractionSettings(cut_support=False)
    shells = extract_object(field, values, settings)
    whole = extract_object(field, values, settings, photos=_photos_around(field, height=1.5))
    sphere_area = 4 * np.pi * 0.3 ** 2
    assert shells.area > 1.3 * sphere_area, shells.area  # the mask's inner boundary meshed as a second shell
    assert connected_parts(whole) == 1
    assert abs(whole.area - sphere_area) < 0.08 * sphere_area, (whole.area, sphere_area)
    # what the shell encloses joins the mask, unless another segmented object holds it (a ball lying in a tray)
    positions = field.to_world(field.vertex_positions().double()).numpy().reshape(*field.shape, 3)
    shell, core = values > 0, (r < 0.2).reshape(field.shape)
    photos = _photos_around(field, height=1.5)
    assert with_unseen_inside(shell, positions, photos, 1.5 * 2.0 / 63)[core].all()
    kept_out = with_unseen_inside(shell, positions, photos, 1.5 * 2.0 / 63, others=core)
    assert not kept_out[core].any() and kept_out.sum() > shell.sum()  # the rest of the inside still joins

    bowl = np.zeros((9, 9, 9), dtype=bool)
    bowl[1:8, 1:8, 1:7] = True
    bowl[2:7, 2:7, 2:7] = False  # open at the top
    closed = bowl.copy()
    closed[1:8, 1:8, 7] = True
    assert enclosed(closed)[2:7, 2:7, 2:7].all() and enclosed(closed).sum() == 125
    assert enclosed(bowl)[2:7, 2:7, 2:7].all()  # five walls around it: only the views tell it is open
    # and the views do: a bowl's inside, seen from above, stays out of its mask
    walls = lambda x, y, z: (z > -0.4) & (z < 0.2) & (x.abs() < 0.4) & (y.abs() < 0.4)
    hollow = lambda x, y, z: (z > -0.3) & (x.abs() < 0.3) & (y.abs() < 0.3)
    field = _solid_field(lambda x, y, z: walls(x, y, z) & ~hollow(x, y, z))
    p = torch.as_tensor(positions.reshape(-1, 3))
    bowl_mask = (walls(p[:, 0], p[:, 1], p[:, 2]) & ~hollow(p[:, 0], p[:, 1], p[:, 2])).numpy().reshape(field.shape)
    inside = (hollow(p[:, 0], p[:, 1], p[:, 2]) & (p[:, 2] < 0.2)).numpy().reshape(field.shape)
    grown = with_unseen_inside(bowl_mask, positions, _photos_around(field, height=4.0), 1.5 * 2.0 / 63)
    assert enclosed(bowl_mask)[inside].all() and grown[inside].mean() < 0.05, grown[inside].mean()


def test_a_flat_object_is_cut_off_the_floor_though_its_mask_holds_more_floor_than_object():
    """A plate 12 cm thick on a 20-cm floor, its mask reaching 15 cm into the floor: most of the mask's matter is the
    floor slab, which no view sees. Judged on what the views see of it, the plate rests on the floor and is cut
    off it (judged on all its matter, the object reached through its 'support' and was left whole)."""
    plate = lambda x, y, z: (x.abs() < 0.3) & (y.abs() < 0.3) & (z < -0.18)
    field = _solid_field(lambda x, y, z: ((z > -0.5) & (z < -0.3)) | plate(x, y, z))
    values = _box_values(field, [-0.33, -0.33, -0.45], [0.33, 0.33, -0.1])
    voxel = 2.0 / 63
    uncut = extract_object(field, values)
    assert uncut.bounds[0, 2] < -0.4  # the slab the mask holds
    cut = extract_object(field, values, photos=_photos_around(field, height=1.5))
    assert -0.3 - BASE_VOXELS * voxel - 0.01 <= cut.bounds[0, 2] <= -0.3 + 1.5 * voxel, cut.bounds
    np.testing.assert_allclose(cut.bounds[:, :2], [[-0.3, -0.3], [0.3, 0.3]], atol=1.5 * voxel)


def _dented_block_case(colours: str):
    """A block whose +x face the field hollows 5 voxels deep in its middle (what fields do to a flat face of one
    colour), photos from a ring of 8 views of that field (black or noise), and the true block's silhouettes."""
    block = lambda x, y, z: (x.abs() < 0.4) & (y.abs() < 0.4) & (z.abs() < 0.4)
    dent = lambda x, y, z: (x - 0.7) ** 2 + y ** 2 + z ** 2 < 0.45 ** 2
    field, truth = _solid_field(lambda x, y, z: block(x, y, z) & ~dent(x, y, z)), _solid_field(block)
    photos = _photos_around(field, height=1.5)
    if colours == "noise":  # a textured face: each view sees other colours at a point in front of it
        rng = np.random.default_rng(0)
        photos = [Photo(p.index, rng.random(p.image.shape, dtype=np.float32), p.cameras, p.depth, p.depth_cameras,
                        p.surface) for p in photos]
    silhouettes = [compute_view_weights(truth, p.cameras, p.index).opacity > 0.5 for p in photos]
    # the mask ends at the block's bottom, as a support cut would leave it: the views never see under it
    values = _box_values(field, [-0.5, -0.5, -0.42], [0.5, 0.5, 0.5])
    return field, truth, values, photos, silhouettes


@pytest.mark.parametrize("colours", ["black", "noise"])
def test_a_dented_face_of_one_colour_is_flat_where_the_silhouettes_allow(colours):
    """The dent lies inside the block's silhouettes in every view: where the views see one colour there, the mesh
    takes the visual hull's flat face; where they see texture (they would disagree on a filled point's colour), the
    field's dent stays."""
    field, truth, values, photos, silhouettes = _dented_block_case(colours)
    settings = ExtractionSettings(cut_support=False)
    block = extract_object(truth, values, settings)
    dented = extract_object(field, values, settings, photos=photos)
    hulled = extract_object(field, values, settings, photos=photos, silhouettes=silhouettes)
    assert dented.volume < 0.97 * block.volume, (dented.volume, block.volume)
    if colours == "black":
        assert abs(hulled.volume - block.volume) < 0.01 * block.volume, (hulled.volume, block.volume)
        assert mesh_distances(hulled, block, 2.0 / 63)["fscore"] > 0.99
        assert connected_parts(hulled) == 1 and hulled.is_watertight
    else:
        assert abs(hulled.volume - dented.volume) < 0.005 * block.volume, (hulled.volume, dented.volume)


def test_what_the_silhouettes_show_empty_stays_empty():
    """An L-shaped block: the notch lies inside the convex hull of its matter and the views see one colour there,
    but the low views' silhouettes show it empty, so it is not filled; nor is what another object holds."""
    from sa3d_blender.core.mesh.visual_hull import silhouette_fill

    shape = lambda x, y, z: (x.abs() < 0.4) & (y.abs() < 0.4) & (z.abs() < 0.4) & ~((x > 0) & (z > 0))
    field = _solid_field(shape)
    photos = _photos_around(field, height=0.3, n=12)
    silhouettes = [compute_view_weights(field, p.cameras, p.index).opacity > 0.5 for p in photos]
    positions = field.to_world(field.vertex_positions().double()).numpy().reshape(*field.shape, 3)
    p = field.vertex_positions().numpy().reshape(*field.shape, 3)
    solid = shape(*[torch.from_numpy(p[..., d]) for d in range(3)]).numpy()
    notch = (p[..., 0] > 0.1) & (p[..., 0] < 0.3) & (p[..., 2] > 0.1) & (p[..., 2] < 0.3) & (np.abs(p[..., 1]) < 0.3)
    filled = silhouette_fill(solid, positions, photos, silhouettes, 1.5 * 2.0 / 63)
    assert not filled[notch].any()
    # elsewhere only vertices within 2 voxels of the matter, which 48-px outlines cannot tell from it (the inner corner)
    from scipy import ndimage
    assert not (filled & ~ndimage.binary_dilation(solid, iterations=2)).any()
    # the same notch with silhouettes that do not show it (a view's outline lost the notch): filled, unless others
    boxes = [compute_view_weights(_solid_field(lambda x, y, z: (x.abs() < 0.4) & (y.abs() < 0.4) & (z.abs() < 0.4)),
                                  q.cameras, q.index).opacity > 0.5 for q in photos]
    within = notch & (p[..., 0] + p[..., 2] < 0.35)  # the convex hull of an L cuts its notch diagonally
    assert silhouette_fill(solid, positions, photos, boxes, 1.5 * 2.0 / 63)[within].all()
    assert not silhouette_fill(solid, positions, photos, boxes, 1.5 * 2.0 / 63, others=notch)[notch].any()


def test_what_no_view_sees_well_behind_an_object_stays_out_of_its_mesh():
    """A block hung in front of a wall, seen from the wall's side only (as the fox's mount is): rays passing the
    block's edge reach faintly into the wall behind it, so its mask (every vertex some view touches, in the block's
    tube) holds the wall's inside there, and the mesh carried it. With the views' visibility the mesh behind the
    block ends at the wall's face; the block is whole."""
    block = lambda x, y, z: (x.abs() < 0.2) & (y.abs() < 0.2) & (z.abs() < 0.2)
    wall = lambda x, y, z: (x > 0.25) & (x < 0.6) & (y.abs() < 0.9) & (z.abs() < 0.9)
    field = _solid_field(lambda x, y, z: block(x, y, z) | wall(x, y, z))
    n, size = 9, 48
    angles = np.radians(np.linspace(120, 240, n))
    c2w = np.stack([look_at((2.5 * np.cos(a), 2.5 * np.sin(a), 0.8 * np.sin(3 * a))) for a in angles])
    cameras = Cameras(c2w, [size] * n, [size] * n, [size / 2] * n, [size / 2] * n, [size] * n, [size] * n,
                      [f"v{k}" for k in range(n)], [None] * n)
    weights = [compute_view_weights(field, cameras, i) for i in range(n)]
    photos = [Photo(i, np.zeros((size, size, 3), np.float32), cameras, w.depth, cameras, w.surface)
              for i, w in enumerate(weights)]
    visibility = np.max([w.splat(np.ones(w.shape)) for w in weights], axis=0).reshape(field.shape)
    p = field.vertex_positions().numpy()
    tube = np.all(np.abs(p) <= [0.45, 0.22, 0.22], axis=1).reshape(field.shape)
    values = np.where(tube & (visibility > 0), 1.0, -1.0).astype(np.float32)
    settings = ExtractionSettings(cut_support=False)
    voxel = 2.0 / 63

    def behind_block(mesh):
        v = mesh.vertices
        return int(((v[:, 0] > 0.25 + 1.5 * voxel) & (np.abs(v[:, 1]) < 0.15) & (np.abs(v[:, 2]) < 0.15)).sum())

    assert behind_block(extract_object(field, values, settings, photos=photos)) > 20  # the wall's inside
    mesh = extract_object(field, values, settings, photos=photos, visibility=visibility)
    assert behind_block(mesh) == 0
    largest = max(mesh.split(only_watertight=False), key=lambda part: part.area)
    np.testing.assert_allclose(largest.bounds, [[-0.2] * 3, [0.2] * 3], atol=1.5 * voxel)
