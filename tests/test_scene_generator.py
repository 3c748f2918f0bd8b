"""The scene generator's output: layout, determinism, masks that match the images, meshes on the plane."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image
from scipy import ndimage

from conftest import run_make_scene


def read_transforms(scene: Path) -> dict:
    return json.loads((scene / "transforms.json").read_text())


def read_ground_truth(scene: Path) -> dict:
    return json.loads((scene / "ground_truth.json").read_text())


def read_masks(scene: Path) -> list[np.ndarray]:
    return [np.array(Image.open(scene / path)) for path in read_ground_truth(scene)["masks"].values()]


def read_images(scene: Path) -> list[np.ndarray]:
    frames = read_transforms(scene)["frames"]
    return [np.asarray(Image.open(scene / f["file_path"]), dtype=np.float32) / 255.0 for f in frames]


def test_tiny_scene_has_interleaved_split_and_blender_intrinsics(tiny_scene):
    transforms = read_transforms(tiny_scene)
    files = [f["file_path"] for f in transforms["frames"]]
    assert len(files) == 24
    assert transforms["test_filenames"] == files[3::4]  # 6 test views, every 4th
    assert transforms["train_filenames"] == [f for i, f in enumerate(files) if i % 4 != 3]
    # 50 mm lens on a 36 mm sensor, horizontal fit, no shift
    assert transforms["w"] == transforms["h"] == 96
    assert transforms["fl_x"] == pytest.approx(50 / 36 * 96)
    assert transforms["fl_y"] == pytest.approx(50 / 36 * 96)
    assert (transforms["cx"], transforms["cy"]) == (48.0, 48.0)
    assert transforms["camera_model"] == "OPENCV"


def test_cameras_are_rigid_on_the_upper_band_and_look_at_the_objects(tiny_scene):
    transforms = read_transforms(tiny_scene)
    objects = read_ground_truth(tiny_scene)["objects"]
    vertices = np.concatenate([trimesh.load(tiny_scene / o["mesh"]).vertices for o in objects])
    centre = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
    azimuths = []
    for frame in transforms["frames"]:
        c2w = np.array(frame["transform_matrix"])
        rotation, position = c2w[:3, :3], c2w[:3, 3]
        np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-5)
        assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-5)
        offset = position - centre
        elevation = math.degrees(math.asin(offset[2] / np.linalg.norm(offset)))
        assert 19.9 <= elevation <= 65.1
        # OpenGL camera: the view direction is -z, and it points at the objects' centre
        np.testing.assert_allclose(-rotation[:, 2], -offset / np.linalg.norm(offset), atol=1e-5)
        azimuths.append(math.atan2(offset[1], offset[0]))
    # all azimuths: no 60-degree sector is left empty
    gaps = np.diff(np.sort(np.mod(azimuths, 2 * math.pi)), append=min(np.mod(azimuths, 2 * math.pi)) + 2 * math.pi)
    assert gaps.max() < math.radians(60)


def test_same_seed_gives_identical_cameras_and_masks_and_another_seed_does_not(tmp_path):
    options = ("--preset", "tiny", "--views", "3", "--resolution", "32")
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        result = run_make_scene(tmp_path / name, *options, "--seed", seed)
        assert result.returncode == 0, result.stderr[-2000:]
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert read_transforms(a) == read_transforms(b)
    for mask_a, mask_b in zip(read_masks(a), read_masks(b), strict=True):
        np.testing.assert_array_equal(mask_a, mask_b)
    for name in ("duck", "box", "can"):
        assert (a / "meshes" / f"{name}.ply").read_bytes() == (b / "meshes" / f"{name}.ply").read_bytes()
    assert read_transforms(a)["frames"] != read_transforms(c)["frames"]
    assert not all(np.array_equal(x, y) for x, y in zip(read_masks(a), read_masks(c)))


def _check_objects_visible_and_sized(scene: Path) -> None:
    masks = read_masks(scene)
    for obj in read_ground_truth(scene)["objects"]:
        visible = [m for m in masks if (m == obj["index"]).sum() >= 20]
        assert len(visible) >= 0.9 * len(masks), f"{obj['name']} visible in only {len(visible)}/{len(masks)} views"
        widths = [np.ptp(np.flatnonzero((m == obj["index"]).any(axis=0))) / m.shape[1] for m in visible]
        assert 0.18 <= np.median(widths) <= 0.5, f"{obj['name']}: median width {np.median(widths):.2f} of the image"


def test_every_tiny_object_is_seen_in_most_views_at_a_segmentable_size(tiny_scene):
    _check_objects_visible_and_sized(tiny_scene)


@pytest.mark.slow
def test_every_demo_object_is_seen_in_most_views_at_a_segmentable_size(demo_scene):
    _check_objects_visible_and_sized(demo_scene)
    assert len(read_ground_truth(demo_scene)["objects"]) == 5


def _edge_strength_at_mask_boundaries(image: np.ndarray, mask: np.ndarray) -> float:
    """Mean image gradient on mask boundaries divided by the mean gradient away from them."""
    grey = image.mean(axis=2)
    gradient = np.hypot(ndimage.sobel(grey, axis=0), ndimage.sobel(grey, axis=1))
    boundary = ndimage.morphological_gradient(mask, size=2) > 0
    far = ~ndimage.binary_dilation(boundary, iterations=3)
    return float(gradient[boundary].mean() / gradient[far].mean())


def test_mask_boundaries_are_image_edges(tiny_scene):
    images, masks = read_images(tiny_scene), read_masks(tiny_scene)
    aligned = [_edge_strength_at_mask_boundaries(i, m) for i, m in zip(images, masks)]
    # the same masks shifted by 3 px (or flipped) no longer sit on the edges: the measure can tell
    shifted = [_edge_strength_at_mask_boundaries(i, np.roll(m, 3, axis=1)) for i, m in zip(images, masks)]
    flipped = [_edge_strength_at_mask_boundaries(i, m[::-1]) for i, m in zip(images, masks)]
    assert min(aligned) > 2.5
    assert np.median(aligned) > 1.5 * max(np.median(shifted), np.median(flipped))


def test_object_pixels_differ_from_the_background_around_them(tiny_scene):
    images, masks = read_images(tiny_scene), read_masks(tiny_scene)
    checked = differing = 0
    for image, mask in zip(images, masks):
        for index in range(1, mask.max() + 1):
            inside = ndimage.binary_erosion(mask == index, iterations=1)
            ring = ndimage.binary_dilation(mask == index, iterations=3) & (mask == 0)
            if inside.sum() < 20 or ring.sum() < 20:
                continue
            checked += 1
            differing += np.linalg.norm(image[inside].mean(axis=0) - image[ring].mean(axis=0)) > 0.1
    assert checked >= 60
    assert differing >= 0.95 * checked


def test_ground_truth_meshes_are_in_world_space_and_rest_on_the_plane_and_no_box_is_given(tiny_scene):
    # like a real capture, the file does not say where the scene is
    assert "aabb" not in read_transforms(tiny_scene)
    centres = []
    for obj in read_ground_truth(tiny_scene)["objects"]:
        mesh = trimesh.load(tiny_scene / obj["mesh"])
        assert len(mesh.faces) >= 12
        assert np.abs(mesh.vertices[:, :2]).max() < 1.25, obj["name"]  # on the 2.5 m plane
        assert mesh.vertices[:, 2].min() == pytest.approx(0.0, abs=1e-5), f"{obj['name']} does not touch the plane"
        centres.append(mesh.vertices[:, :2].mean(axis=0))
    # placed in the world (not all at the origin where they were modelled) and apart from each other
    distances = [np.linalg.norm(p - q) for i, p in enumerate(centres) for q in centres[:i]]
    assert min(distances) > 0.15


def test_room_preset_has_surroundings_varied_cameras_and_a_ball_in_the_tray(tmp_path):
    result = run_make_scene(tmp_path / "room", "--preset", "room", "--views", "6", "--resolution", "48")
    assert result.returncode == 0, result.stderr[-2000:]
    scene = tmp_path / "room"
    transforms = read_transforms(scene)
    assert "aabb" not in transforms
    centres = np.array([f["transform_matrix"] for f in transforms["frames"]])[:, :3, 3]
    distances = np.linalg.norm(centres - centres.mean(axis=0) * [1, 1, 0], axis=1)
    assert distances.max() > 1.8 * distances.min()  # near and far cameras
    images = read_images(scene)
    masks = read_masks(scene)
    # behind the objects the views see walls of different colours, not one sky colour
    background = np.concatenate([image[mask == 0] for image, mask in zip(images, masks)])
    assert background.std(axis=0).mean() > 0.05
    meshes = {o["name"]: trimesh.load(scene / o["mesh"]) for o in read_ground_truth(scene)["objects"]}
    ball, tray = meshes["ball"].vertices, meshes["tray"].vertices
    assert np.all(ball[:, :2].min(axis=0) > tray[:, :2].min(axis=0))  # inside the tray's footprint
    assert np.all(ball[:, :2].max(axis=0) < tray[:, :2].max(axis=0))
    assert ball[:, 2].min() > tray[:, 2].min()


def test_forward_preset_writes_an_llff_capture_with_depth_bounds(tmp_path):
    from sa3d_blender.core.data.datasets import load_dataset

    result = run_make_scene(tmp_path / "fwd", "--preset", "forward", "--views", "8", "--resolution", "40")
    assert result.returncode == 0, result.stderr[-2000:]
    scene = tmp_path / "fwd"
    assert not (scene / "transforms.json").exists()
    dataset = load_dataset(scene)
    assert dataset.format == "llff" and dataset.scene_type == "forward" and dataset.ground_truth is not None
    assert np.all(dataset.near > 0.3) and np.all(dataset.near < 2.0)
    # the objects' vertices project where the masks say they are: the box around the projected vertices matches the
    # box around the mask (a wrong convention puts them elsewhere; occlusion only trims the mask a little)
    truth = dataset.ground_truth
    for info in truth.objects:
        vertices = trimesh.load(info.mesh_path).vertices
        ious = []
        for i in range(len(dataset.cameras)):
            xy, depth = dataset.cameras.project(i, vertices)
            assert np.all(depth > dataset.near[i] * 0.99)
            rows, cols = np.nonzero(truth.load_mask(i) == info.index)
            if len(rows) < 20:
                continue
            projected = np.array([np.clip(xy.min(axis=0), 0, 40), np.clip(xy.max(axis=0), 0, 40)])
            masked = np.array([[cols.min(), rows.min()], [cols.max() + 1, rows.max() + 1]])
            overlap = np.clip(np.minimum(projected[1], masked[1]) - np.maximum(projected[0], masked[0]), 0, None).prod()
            ious.append(overlap / (np.prod(projected[1] - projected[0]) + np.prod(masked[1] - masked[0]) - overlap))
        assert len(ious) >= 4 and np.median(ious) > 0.6, (info.name, ious)


def test_ground_truth_json_names_objects_meshes_and_a_mask_per_view(tiny_scene):
    truth = read_ground_truth(tiny_scene)
    assert truth["version"] == 1 and truth["preset"] == "tiny" and truth["seed"] == 0
    assert [(o["index"], o["name"]) for o in truth["objects"]] == [(1, "duck"), (2, "box"), (3, "can")]
    assert list(truth["masks"]) == [f"{i:04d}" for i in range(24)]
    mask = np.array(Image.open(tiny_scene / truth["masks"]["0000"]))
    assert mask.dtype == np.uint8 and mask.shape == (96, 96)
    assert set(np.unique(mask)) <= {0, 1, 2, 3}


def test_existing_non_empty_output_folder_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "scene"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = run_make_scene(out, "--preset", "tiny", "--views", "2", "--resolution", "16")
    assert result.returncode == 2
    assert str(out) in result.stderr and "not empty" in result.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["scene"]  # no staging folder left behind


@pytest.mark.parametrize("preset", ["lookalike", "thin"])
def test_touching_presets_put_every_object_in_contact_with_another_without_overlap(tmp_path, preset):
    from scipy.spatial import Delaunay, cKDTree

    result = run_make_scene(tmp_path / preset, "--preset", preset, "--views", "4", "--resolution", "32")
    assert result.returncode == 0, result.stderr[-2000:]
    meshes = {o["name"]: trimesh.load(tmp_path / preset / o["mesh"]) for o in read_ground_truth(tmp_path / preset)["objects"]}
    assert len(meshes) == 5
    surfaces = {name: mesh.sample(20000, seed=0) for name, mesh in meshes.items()}
    for name, points in surfaces.items():
        # the footprints touch (the generator leaves 3 mm between outlines); surfaces come within about a centimetre
        gaps = [cKDTree(other).query(points)[0].min() for other_name, other in surfaces.items() if other_name != name]
        assert min(gaps) < 0.015, (name, gaps)
        for other_name, mesh in meshes.items():  # and do not run into each other: no footprint inside another's
            if other_name != name:
                footprint = Delaunay(mesh.vertices[:, :2])
                assert (footprint.find_simplex(meshes[name].vertices[:, :2]) >= 0).sum() == 0, (name, other_name)
    if preset == "lookalike":  # identical shapes: the bunnies are copies of one another
        shapes = [np.sort(np.linalg.norm(v - v.mean(axis=0), axis=1))  # unchanged by the yaw and the position
                  for v in (meshes[f"bunny{k}"].vertices for k in (1, 2, 3))]
        assert np.allclose(shapes[1], shapes[0], atol=1e-4) and np.allclose(shapes[2], shapes[0], atol=1e-4)
