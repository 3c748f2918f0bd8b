"""load_dataset: every transforms.json flavour and LLFF give the same hand-computed pixels; splits, bbox, images, truth."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sa3d_blender.core.data.datasets import load_dataset

# The reference camera of most tests: at (0,0,5) looking down -z, focal 100 px, 100x80 image, centred principal point.
# It must project the world point (1,0,0) to pixel (70, 40).
W, H, FOCAL = 100, 80, 100.0


def write_png(path: Path, width: int = W, height: int = H, mode: str = "RGB", fill=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (width, height), fill if fill is not None else (0,) * len(mode)).save(path)


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def translation(x, y, z) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = (x, y, z)
    return m


def look_at(eye, target=(0, 0, 0), up=(0, 0, 1)) -> np.ndarray:
    """OpenGL camera-to-world of a camera at `eye` looking at `target`."""
    back = np.subtract(eye, target) / np.linalg.norm(np.subtract(eye, target))
    right = np.cross(up, back) / np.linalg.norm(np.cross(up, back))
    c2w = np.eye(4)
    c2w[:3, :3] = np.stack([right, np.cross(back, right), back], axis=1)
    c2w[:3, 3] = eye
    return c2w


def ngp_scene(root: Path, poses, **top) -> Path:
    """An instant-ngp style transforms.json with one 100x80 PNG per pose; `top` adds keys (or drops them: None)."""
    frames = []
    for k, c2w in enumerate(poses):
        write_png(root / "images" / f"{k:04d}.png")
        frames.append({"file_path": f"images/{k:04d}.png", "transform_matrix": np.asarray(c2w).tolist()})
    data = {"fl_x": FOCAL, "fl_y": FOCAL, "cx": W / 2, "cy": H / 2, "w": W, "h": H, "frames": frames, **top}
    return write_json(root / "transforms.json", {key: value for key, value in data.items() if value is not None})


def llff_scene(root: Path, poses, near=1.0, far=2.0, hwf=(H, W, FOCAL), image_dir="images", image_size=(W, H)) -> Path:
    """poses_bounds.npy for OpenGL poses: rotation columns rewritten as LLFF's (down, right, back)."""
    rows = []
    for k, c2w in enumerate(poses):
        right, up, back, centre = (np.asarray(c2w)[:3, j] for j in range(4))
        pose = np.stack([-up, right, back, centre, hwf], axis=1)  # [3,5]
        rows.append(np.concatenate([pose.ravel(), [near, far]]))
        write_png(root / image_dir / f"img{k:03d}.jpg", *image_size)
    np.save(root / "poses_bounds.npy", np.array(rows))
    return root / "poses_bounds.npy"


def test_instant_ngp_camera_projects_hand_computed_pixel_and_uses_aabb(tmp_path):
    path = ngp_scene(tmp_path, [translation(0, 0, 5)], aabb=[[-1, -2, -3], [1, 2, 3]], scale=0.33, offset=[0.5, 0.5, 0.5])
    dataset = load_dataset(path)
    xy, depth = dataset.cameras.project(0, np.array([[1.0, 0, 0]]))
    np.testing.assert_allclose(xy, [[70, 40]])
    np.testing.assert_allclose(depth, [5])
    np.testing.assert_allclose(dataset.bbox, [[-1, -2, -3], [1, 2, 3]])
    assert dataset.format == "instant_ngp" and dataset.root == tmp_path
    assert dataset.cameras.names == ["0000"]
    assert dataset.cameras.image_paths == [tmp_path / "images" / "0000.png"]


def test_original_nerf_split_files_without_extension(tmp_path):
    angle = 2 * math.atan(0.5 * W / FOCAL)  # camera_angle_x giving focal 100 for a 100 px wide image
    # cameras around the origin; the first at (0,-5,0) looks along +y with +x right and +z up
    eyes = {"train": [(0, -5, 0), (5, 0, 0), (0, 5, 0)], "val": [(-5, 0, 0)], "test": [(0, -5, 1), (1, 5, 0)]}
    for split, split_eyes in eyes.items():
        frames = []
        for k, eye in enumerate(split_eyes):
            write_png(tmp_path / split / f"r_{k}.png", mode="RGBA")
            frames.append({"file_path": f"./{split}/r_{k}", "transform_matrix": look_at(eye).tolist()})
        write_json(tmp_path / f"transforms_{split}.json", {"camera_angle_x": angle, "frames": frames})
    dataset = load_dataset(tmp_path)
    assert dataset.format == "nerf_synthetic"
    # stems repeat across the split folders, so views are named by their path
    assert dataset.cameras.names == ["train/r_0", "train/r_1", "train/r_2", "val/r_0", "test/r_0", "test/r_1"]
    assert dataset.train.tolist() == [0, 1, 2] and dataset.val.tolist() == [3] and dataset.test.tolist() == [4, 5]
    np.testing.assert_allclose(dataset.cameras.fx, FOCAL)
    np.testing.assert_allclose(dataset.cameras.fy, FOCAL)
    xy, _ = dataset.cameras.project(0, np.array([[1.0, 0, 0]]))
    np.testing.assert_allclose(xy, [[70, 40]])
    # loading through the split file gives the same dataset
    assert load_dataset(tmp_path / "transforms_test.json").cameras.names == dataset.cameras.names


def test_nerfstudio_per_frame_intrinsics_split_keys_and_applied_transform(tmp_path):
    poses = [look_at((0, -5, 0)), look_at((5, 0, 0)), look_at((-5, 0, 0))]  # the first has +x right, +z up
    path = ngp_scene(
        tmp_path,
        poses,
        camera_model="OPENCV",
        fl_x=999.0,
        fl_y=999.0,
        applied_transform=[[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0]],
        train_filenames=["images/0001.png", "images/0002.png"],
        test_filenames=["images/0000.png"],
    )
    data = json.loads(path.read_text())
    data["frames"][0].update(fl_x=FOCAL, fl_y=FOCAL, cx=30.0, cy=20.0, k1=0.1)
    path.write_text(json.dumps(data))
    dataset = load_dataset(tmp_path)
    assert dataset.format == "nerfstudio"
    np.testing.assert_allclose(dataset.cameras.distortion[0], [0.1, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(dataset.cameras.fx, [FOCAL, 999, 999])
    xy, _ = dataset.cameras.project(0, np.array([[1.0, 0, 0]]))
    # the point is 20 px = 0.2 focal lengths right of the axis; k1 = 0.1 pushes it out by 1 + 0.1 * 0.2^2
    np.testing.assert_allclose(xy, [[30 + 20 * (1 + 0.1 * 0.2**2), 20]])
    assert dataset.train.tolist() == [1, 2] and dataset.test.tolist() == [0]
    np.testing.assert_allclose(dataset.applied_transform, [[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0]])
    # applied_transform is already in the frames: poses are left as written
    np.testing.assert_allclose(dataset.cameras.c2w[1], poses[1])


def test_llff_pose_projects_hand_computed_pixel_and_bbox_from_bounds(tmp_path):
    dataset = load_dataset(llff_scene(tmp_path, [translation(0, 0, 0)], near=1.0, far=2.0))
    assert dataset.format == "llff"
    np.testing.assert_allclose(dataset.cameras.c2w[0], np.eye(4))
    xy, depth = dataset.cameras.project(0, np.array([[1.0, 0, -5]]))
    np.testing.assert_allclose(xy, [[70, 40]])
    np.testing.assert_allclose(depth, [5])
    # frustum between depth 1 and 2: half-width 0.5*W/f*d = 0.5d, half-height 0.4d
    np.testing.assert_allclose(dataset.bbox, [[-1.0, -0.8, -2.0], [1.0, 0.8, -1.0]])


def test_llff_down_right_back_axes_by_hand(tmp_path):
    # an LLFF row written by hand: the camera sits at (5,0,0) and looks along -x with +z up,
    # so its down axis is -z, its right axis +y and its back axis +x (columns: down, right, back, centre, hwf)
    row = np.array([[0, 0, 1, 5, H], [0, 1, 0, 0, W], [-1, 0, 0, 0, FOCAL]], dtype=float)
    write_png(tmp_path / "images" / "a.png")
    np.save(tmp_path / "poses_bounds.npy", np.concatenate([row.ravel(), [1, 9]])[None])
    cameras = load_dataset(tmp_path).cameras
    # OpenGL columns right = +y, up = +z, back = +x
    np.testing.assert_allclose(cameras.c2w[0, :3, :3], [[0, 0, 1], [1, 0, 0], [0, 1, 0]])
    # world (0,1,0) is one unit to the camera's right at depth 5; world (0,0,1) is one unit up
    xy, _ = cameras.project(0, np.array([[0.0, 1, 0], [0.0, 0, 1]]))
    np.testing.assert_allclose(xy, [[70, 40], [50, 20]])


def test_llff_downsampled_images_scale_the_focal_length(tmp_path):
    path = llff_scene(tmp_path, [translation(0, 0, 5)], hwf=(4 * H, 4 * W, 4 * FOCAL), image_dir="images_4")
    write_png(tmp_path / "images" / "img000.jpg", 4 * W, 4 * H)
    dataset = load_dataset(path, image_dir="images_4")
    assert (dataset.cameras.width[0], dataset.cameras.height[0]) == (W, H)
    xy, _ = dataset.cameras.project(0, np.array([[1.0, 0, 0]]))
    np.testing.assert_allclose(xy, [[70, 40]])
    full = load_dataset(path).cameras
    np.testing.assert_allclose(full.project(0, np.array([[1.0, 0, 0]]))[0], [[280, 160]])


def test_every_flavour_gives_the_same_pixels_for_a_tilted_camera(tmp_path):
    poses = [look_at((3.0, -4.0, 2.0)), look_at((-1.0, 2.0, 4.0))]
    points = np.random.default_rng(0).uniform(-1, 1, size=(20, 3))
    angle = 2 * math.atan(0.5 * W / FOCAL)
    ngp = load_dataset(ngp_scene(tmp_path / "ngp", poses))
    nerfstudio = load_dataset(ngp_scene(tmp_path / "ns", poses, camera_model="OPENCV"))
    nerf = load_dataset(ngp_scene(tmp_path / "nerf", poses, fl_x=None, fl_y=None, cx=None, cy=None, w=None, h=None,
                                  camera_angle_x=angle))
    llff = load_dataset(llff_scene(tmp_path / "llff", poses))
    for dataset in (nerfstudio, nerf, llff):
        for i in range(2):
            np.testing.assert_allclose(dataset.cameras.project(i, points)[0], ngp.cameras.project(i, points)[0], atol=1e-9)
    # independent check against the OpenCV pinhole formula for the first camera
    c2w_cv = poses[0].copy()
    c2w_cv[:3, 1:3] *= -1
    local = (points - c2w_cv[:3, 3]) @ c2w_cv[:3, :3]
    expected = FOCAL * local[:, :2] / local[:, 2:] + [W / 2, H / 2]
    np.testing.assert_allclose(ngp.cameras.project(0, points)[0], expected, atol=1e-9)


def test_default_split_holds_out_every_eighth_view(tmp_path):
    dataset = load_dataset(ngp_scene(tmp_path, [look_at((4 * math.cos(a), 4 * math.sin(a), 1)) for a in range(17)]))
    assert dataset.test.tolist() == [0, 8, 16]
    assert dataset.train.tolist() == [k for k in range(17) if k % 8]


def test_bbox_from_cameras_centres_where_the_axes_meet(tmp_path):
    centre = np.array([1.0, 2.0, 3.0])
    eyes = [centre + 4 * np.array([math.cos(a) * math.cos(e), math.sin(a) * math.cos(e), math.sin(e)])
            for a, e in zip(np.linspace(0, 2 * math.pi, 9)[:-1], [0.3, 0.6, -0.2, 0.4, 0.1, 0.5, 0.2, 0.7])]
    dataset = load_dataset(ngp_scene(tmp_path, [look_at(eye, centre) for eye in eyes]))
    # every camera is 4 from the centre; the wider half field of view has tan = 0.5*W/f = 0.5 -> half-size 2
    np.testing.assert_allclose(dataset.bbox, [centre - 2, centre + 2], atol=1e-9)


def test_load_image_scales_to_unit_range_and_composites_alpha(tmp_path):
    path = ngp_scene(tmp_path, [look_at((4, 0, 1)), look_at((0, 4, 1))])
    rgba = Image.new("RGBA", (W, H), (255, 0, 0, 0))
    rgba.putpixel((3, 2), (255, 0, 0, 255))
    rgba.putpixel((4, 2), (0, 0, 0, 51))  # 20 % black
    rgba.save(tmp_path / "images" / "0000.png")
    Image.new("RGB", (W, H), (255, 51, 0)).save(tmp_path / "images" / "0001.png")
    dataset = load_dataset(path)
    image = dataset.load_image(0)
    assert image.dtype == np.float32 and image.shape == (H, W, 3)
    np.testing.assert_allclose(image[0, 0], [1, 1, 1])  # transparent -> white by default
    np.testing.assert_allclose(image[2, 3], [1, 0, 0])
    np.testing.assert_allclose(image[2, 4], [0.8, 0.8, 0.8], atol=1e-6)
    np.testing.assert_allclose(dataset.load_image(1)[5, 5], [1, 0.2, 0], atol=1e-6)
    data = json.loads(path.read_text())
    data["background_color"] = [0, 0, 1]
    path.write_text(json.dumps(data))
    np.testing.assert_allclose(load_dataset(path).load_image(0)[0, 0], [0, 0, 1])


def test_ground_truth_masks_and_objects(tmp_path):
    ngp_scene(tmp_path, [look_at((4, 0, 1)), look_at((0, 4, 1))])
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[10:20, 30:50] = 1
    mask[40:45, 5:9] = 2
    (tmp_path / "masks").mkdir()
    Image.fromarray(mask).save(tmp_path / "masks" / "0001.png")
    (tmp_path / "meshes").mkdir()
    for name in ("duck", "cube"):
        (tmp_path / "meshes" / f"{name}.ply").write_text("ply\n")
    write_json(tmp_path / "ground_truth.json", {
        "version": 1,
        "objects": [{"index": 1, "name": "duck", "mesh": "meshes/duck.ply"},
                    {"index": 2, "name": "cube", "mesh": "meshes/cube.ply"}],
        "masks": {"0001": "masks/0001.png"},
        "seed": 0,
        "preset": "demo",
    })
    truth = load_dataset(tmp_path).ground_truth
    loaded = truth.load_mask(1)
    assert loaded.dtype == np.int32
    np.testing.assert_array_equal(loaded, mask)
    assert truth.object("cube").index == 2
    assert truth.object("duck").mesh_path == tmp_path / "meshes" / "duck.ply"
    assert [o.name for o in truth.objects] == ["duck", "cube"]


def test_llff_with_only_reduced_folders_loads_without_flags_and_reads_the_smallest_big_enough(tmp_path):
    # the usual LLFF download: no images/, only images_4/ and images_8/ of a 4x-larger original
    path = llff_scene(tmp_path, [translation(0, 0, 5)], hwf=(4 * H, 4 * W, 4 * FOCAL), image_dir="images_4",
                      image_size=(W, H))
    write_png(tmp_path / "images_8" / "img000.png", W // 2, H // 2, fill=(255, 0, 0))
    dataset = load_dataset(path)
    assert dataset.format == "llff" and dataset.scene_type == "forward"
    assert (dataset.cameras.width[0], dataset.cameras.height[0]) == (W, H)
    assert dataset.load_image(0).shape == (H, W, 3)
    small = dataset.at_pixel_budget(W * H // 4)
    assert (small.cameras.width[0], small.cameras.height[0]) == (W // 2, H // 2)
    assert small.full_cameras is dataset.cameras
    # images_8 (pure red) is exactly the working size: read from there, not shrunk from images_4
    np.testing.assert_allclose(small.load_image(0)[0, 0], [1, 0, 0])
    # the same ray through the same point in both resolutions
    xy_full, _ = dataset.cameras.project(0, np.array([[0.3, -0.2, 0.0]]))
    xy_small, _ = small.cameras.project(0, np.array([[0.3, -0.2, 0.0]]))
    np.testing.assert_allclose(xy_small, xy_full / 2)


def test_pixel_budget_shrinks_big_images_by_area_average(tmp_path):
    root = ngp_scene(tmp_path, [look_at((3.0, -4.0, 2.0)), look_at((-1.0, 2.0, 4.0))])
    dataset = load_dataset(root)
    assert dataset.at_pixel_budget(None).cameras is dataset.cameras
    assert dataset.at_pixel_budget(10 * W * H).cameras is dataset.cameras
    small = dataset.at_pixel_budget(W * H // 16)
    assert (small.cameras.width[0], small.cameras.height[0]) == (W // 4, H // 4)
    image, reduced = dataset.load_image(0), small.load_image(0)
    np.testing.assert_allclose(reduced, image.reshape(H // 4, 4, W // 4, 4, 3).mean(axis=(1, 3)), atol=1e-5)


def test_scene_type_from_the_cameras(tmp_path):
    ring = [look_at((4 * math.cos(a), 4 * math.sin(a), 1.0)) for a in np.linspace(0, 2 * math.pi, 6, endpoint=False)]
    assert load_dataset(ngp_scene(tmp_path / "ring", ring)).scene_type == "unbounded"
    rig = [look_at((x, -4.0, 0.5)) for x in (-1.0, 0.0, 1.0)]
    assert load_dataset(ngp_scene(tmp_path / "rig", rig)).scene_type == "forward"
    assert load_dataset(ngp_scene(tmp_path / "rig", rig), scene_type="bounded").scene_type == "bounded"
