"""Photo textures: the rasterizer, baking a known image back onto a surface, and a known-colour object of a rendered
scene coming back in its photographed colour, better than its vertex colours."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from sa3d_blender.core.data.cameras import Cameras
from sa3d_blender.core.data.datasets import load_dataset
from sa3d_blender.core.evaluation import appearance_psnr, reference_clicks, reference_view
from sa3d_blender.core.field.field_checkpoint import load_field
from sa3d_blender.core.mesh.mesh_extraction import ExtractionSettings
from sa3d_blender.core.mesh.object_export import extract_object
from sa3d_blender.core.mesh.rasterize import interpolate, rasterize, render_colours
from sa3d_blender.core.mesh.texture import Photo, TextureSettings, bake_texture
from sa3d_blender.core.metrics import psnr
from sa3d_blender.core.segment.sa3d import SceneSegmenter
from sa3d_blender.core.segment.segmenters import load_segmenter
from test_view_cache import tiny_field_path


def test_two_triangles_cover_every_pixel_once_and_interpolate_linearly():
    corners = np.array([[0, 0], [12, 0], [0, 8], [12, 8]], dtype=np.float64)
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    face_id, bary = rasterize(corners, faces, (12, 8))
    assert (face_id >= 0).all() and set(np.unique(face_id)) == {0, 1}
    xs, ys = np.meshgrid(np.arange(12) + 0.5, np.arange(8) + 0.5)
    at = interpolate(corners, faces, face_id, bary)
    np.testing.assert_allclose(at, np.stack([xs.ravel(), ys.ravel()], 1), atol=1e-5)


def test_the_nearest_triangle_wins_whatever_the_drawing_order():
    points = np.array([[0, 0], [10, 0], [0, 10]] * 2, dtype=np.float64)
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    for near, far in ((0, 1), (1, 0)):
        depth = np.ones(6)
        depth[3 * far:3 * far + 3] = 2.0
        face_id, _ = rasterize(points, faces, (10, 10), depth=depth)
        assert set(np.unique(face_id[face_id >= 0])) == {near}


def test_many_overlapping_triangles_of_every_size_match_a_pixel_by_pixel_z_test():
    """Against the definition, pixel by pixel: the nearest face whose closed triangle holds the pixel centre (the
    lowest index among equally near ones), its perspective-correct weights; faces from sub-pixel to larger than the
    image, partly off it, in one call."""
    rng = np.random.default_rng(3)
    width, height, n = 37, 29, 300
    centres = rng.uniform(-5, 42, (n, 1, 2))
    scale = np.exp(rng.uniform(np.log(0.3), np.log(60), (n, 1, 1)))
    points = (centres + scale * rng.uniform(-1, 1, (n, 3, 2))).reshape(-1, 2)
    depth = np.repeat(rng.integers(1, 6, n).astype(np.float64), 3) * rng.uniform(1.0, 1.01, 3 * n)
    faces = np.arange(3 * n).reshape(n, 3)
    face_id, bary = rasterize(points, faces, (width, height), depth=depth)

    expected = np.full((height, width), -1)
    nearest = np.full((height, width), np.inf)
    for f in range(n):
        a, b, c = points[faces[f]]
        area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        if abs(area) <= 1e-12:
            continue
        for row in range(height):
            for col in range(width):
                x, y = col + 0.5, row + 0.5
                w = np.array([(c[0] - b[0]) * (y - b[1]) - (c[1] - b[1]) * (x - b[0]),
                              (a[0] - c[0]) * (y - c[1]) - (a[1] - c[1]) * (x - c[0]),
                              (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0])]) / area
                if (w >= -1e-7).all():
                    z = 1.0 / (w / depth[faces[f]]).sum()
                    if z < nearest[row, col]:
                        nearest[row, col], expected[row, col] = z, f
    np.testing.assert_array_equal(face_id, expected)
    assert len(np.unique(expected)) > 20  # the case is not trivial: many faces show
    covered = face_id >= 0
    rows, cols = np.nonzero(covered)
    z = 1.0 / (bary[covered] / depth[faces[face_id[covered]]]).sum(-1)
    np.testing.assert_allclose(z, nearest[rows, cols], rtol=1e-4)  # weights are float32


def _camera_looking_down_z(size: int) -> Cameras:
    c2w = np.eye(4)
    c2w[2, 3] = 2.0  # at z = 2, looking along -z at the plane z = 0
    return Cameras(c2w=c2w[None], fx=[size], fy=[size], cx=[size / 2], cy=[size / 2], width=[size], height=[size],
                   names=["front"], image_paths=[None])


def test_a_photo_baked_onto_a_plane_renders_back_as_the_photo():
    size = 64
    cameras = _camera_looking_down_z(size)
    rows, cols = np.mgrid[0:size, 0:size] / size
    image = np.stack([cols, rows, 0.5 + 0.4 * np.sin(6 * cols) * np.cos(5 * rows)], -1).astype(np.float32)
    plane = trimesh.creation.box(extents=(2.4, 2.4, 0.01)).subdivide().subdivide()  # fills the view: its top face
    plane.visual.vertex_colors = [128, 128, 128, 255]
    _, dirs = cameras.pixel_rays(0)
    depth = ((2.0 - 0.005) / -dirs[:, 2]).reshape(size, size)  # ray distance to the top face, as the field renders it
    textured = bake_texture(plane, [Photo(0, image, cameras, depth, cameras)], TextureSettings(size=512))
    painted, covered = render_colours(textured.vertices, textured.faces, cameras, 0, uv=textured.uv,
                                      texture=textured.image)
    plain, _ = render_colours(plane.vertices, plane.faces, cameras, 0, vertex_rgb=np.full((len(plane.vertices), 3), 0.5))
    inner = np.zeros((size, size), dtype=bool)
    inner[4:-4, 4:-4] = True  # pixel rows at the plane's rim mix in its side faces
    assert covered[inner].all()
    assert psnr(painted[inner], image[inner]) > 30.0 > psnr(plain[inner], image[inner]) + 10.0
    assert textured.uv.min() >= 0.0 and textured.uv.max() <= 1.0 and textured.image.dtype == np.uint8
    assert len(textured.loop_uv) == 3 * len(textured.faces)
    np.testing.assert_allclose(textured.vertices, plane.vertices[textured.mapping])


def test_a_surface_hidden_behind_another_keeps_its_own_colour():
    size = 32
    cameras = _camera_looking_down_z(size)
    plane = trimesh.creation.box(extents=(1.0, 1.0, 0.01))
    plane.visual.vertex_colors = [20, 200, 20, 255]
    image = np.ones((size, size, 3), dtype=np.float32)  # what occludes it is white
    occluder_depth = np.full((size, size), 1.0, dtype=np.float32)  # something 1 m in front of the plane
    textured = bake_texture(plane, [Photo(0, image, cameras, occluder_depth, cameras)], TextureSettings(size=256))
    assert textured.seen_fraction == 0.0
    painted, covered = render_colours(textured.vertices, textured.faces, cameras, 0, uv=textured.uv,
                                      texture=textured.image)
    np.testing.assert_allclose(np.median(painted[covered], axis=0), [20 / 255, 200 / 255, 20 / 255], atol=0.02)


@pytest.fixture(scope="module")
def red_box(tiny_scene):
    torch.set_num_threads(2)
    field, _, _ = load_field(tiny_field_path(tiny_scene))
    dataset = load_dataset(tiny_scene)
    scene = SceneSegmenter(field, dataset, load_segmenter("mobile_sam", device="cpu"))
    index = dataset.ground_truth.object("box").index
    view = reference_view(scene, "box")
    clicks = reference_clicks(dataset.ground_truth.load_mask(view) == index)
    scene.segment("box", view, clicks, np.ones(len(clicks)))
    mesh = extract_object(field, scene.object_grid("box"), ExtractionSettings())
    return scene, mesh, bake_texture(mesh, scene.photos())


def test_the_red_box_comes_back_in_its_photographed_colour(red_box):
    """Seen from the held-out cameras, the textured box has the red the photos show (sRGB, lighting included)."""
    scene, mesh, textured = red_box
    dataset = scene.dataset
    index = dataset.ground_truth.object("box").index
    photographed, painted = [], []
    for i in map(int, dataset.test):
        truth = dataset.ground_truth.load_mask(i) == index
        rendered, covered = render_colours(textured.vertices, textured.faces, dataset.cameras, i, uv=textured.uv,
                                           texture=textured.image)
        photographed.append(dataset.load_image(i)[truth & covered])
        painted.append(rendered[truth & covered])
    photographed, painted = np.concatenate(photographed), np.concatenate(painted)
    print("photos", np.median(photographed, 0), "texture", np.median(painted, 0), "seen", textured.seen_fraction)
    np.testing.assert_allclose(np.median(painted, axis=0), np.median(photographed, axis=0), atol=0.04)
    assert textured.seen_fraction > 0.6


def test_the_textured_box_matches_held_out_photos_better_than_its_vertex_colours(red_box):
    scene, mesh, textured = red_box
    scores = appearance_psnr(scene.dataset, "box", mesh, textured, list(map(int, scene.dataset.test)))
    print(scores)
    assert scores["appearance_psnr_texture"] > scores["appearance_psnr_vertex"]
    assert scores["appearance_psnr_texture"] >= 18.0


def test_the_textured_glb_opens_in_blender_with_an_srgb_image_texture(tmp_path):
    from addon_manifest.bpy_sandbox import run_bpy
    from sa3d_blender.core.mesh.mesh_extraction import write_mesh

    size = 32
    cameras = _camera_looking_down_z(size)
    plane = trimesh.creation.box(extents=(2.4, 2.4, 0.01))
    plane.visual.vertex_colors = [128, 128, 128, 255]
    image = np.zeros((size, size, 3), dtype=np.float32)
    image[..., 0] = 0.8  # a red photo
    _, dirs = cameras.pixel_rays(0)
    depth = ((2.0 - 0.005) / -dirs[:, 2]).reshape(size, size)
    textured = bake_texture(plane, [Photo(0, image, cameras, depth, cameras)], TextureSettings(size=64))
    glb = write_mesh(textured.trimesh(), tmp_path / "plane.glb")
    result = run_bpy("""
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.gltf(filepath=GLB)
obj = next(o for o in bpy.data.objects if o.type == "MESH")
nodes = obj.active_material.node_tree.nodes
images = [n.image for n in nodes if n.bl_idname == "ShaderNodeTexImage" and n.image is not None]
report({"uv_layers": len(obj.data.uv_layers), "images": len(images),
        "colorspace": images[0].colorspace_settings.name if images else None, "faces": len(obj.data.polygons)})
""", tmp_path, variables={"GLB": str(glb)})
    assert result == {"uv_layers": 1, "images": 1, "colorspace": "sRGB", "faces": len(plane.faces)}
