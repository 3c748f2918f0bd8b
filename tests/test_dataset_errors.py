"""Bad datasets: each gives a DatasetError whose message names the file and the specific problem."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from sa3d_blender.core.data.datasets import load_dataset
from sa3d_blender.core.errors import DatasetError
from test_datasets import H, W, llff_scene, look_at, ngp_scene, write_json, write_png

RING = [look_at((4 * math.cos(a), 4 * math.sin(a), 1.0)) for a in (0.0, 2.0, 4.0)]
SHEARED = [[1, 0.6, 0, 0], [0, 0.8, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]  # unit columns, 37 degrees apart from square


def expect_error(path, problem: str, file_name: str, **kwargs) -> DatasetError:
    with pytest.raises(DatasetError) as caught:
        load_dataset(path, **kwargs)
    message = str(caught.value)
    assert file_name in message, message
    assert problem in message, message
    return caught.value


def edit_json(path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_folder_without_a_dataset_file(tmp_path):
    expect_error(tmp_path, "no transforms.json, transforms_train.json, poses_bounds.npy or COLMAP model", tmp_path.name)


def test_missing_file(tmp_path):
    expect_error(tmp_path / "transforms.json", "file not found", "transforms.json")


def test_malformed_json_reports_the_position(tmp_path):
    (tmp_path / "transforms.json").write_text('{\n  "fl_x": 100,\n  "frames": [,]\n}')
    expect_error(tmp_path, "not valid JSON: Expecting value at line 3, column 14", "transforms.json")


def test_json_that_is_not_an_object(tmp_path):
    (tmp_path / "transforms.json").write_text("[1, 2]")
    expect_error(tmp_path, "expected a JSON object at the top level, found list", "transforms.json")


@pytest.mark.parametrize(
    "edit, problem",
    [
        (lambda d: d.pop("frames"), "no 'frames' key"),
        (lambda d: d.update(frames=[]), "'frames' is empty"),
        (lambda d: d["frames"][1].pop("transform_matrix"), "frame 1 (images/0001.png) has no 'transform_matrix'"),
        (lambda d: d["frames"][1].update(transform_matrix=[[1, 0, 0, 0]] * 3), "transform_matrix has shape 3x4"),
        (lambda d: d["frames"][1].update(transform_matrix=[[1, 0], [0]]), "transform_matrix is not a 4x4 array"),
        (lambda d: d["frames"][2]["transform_matrix"][0].__setitem__(3, math.nan), "frame 2 (images/0002.png): trans"),
        (lambda d: d["frames"][0].update(transform_matrix=np.diag([1.5, 1.5, 1.5, 1]).tolist()), "rotation part is scaled"),
        (lambda d: d["frames"][0].update(transform_matrix=SHEARED), "not orthonormal"),
        (lambda d: d["frames"][0].update(transform_matrix=np.diag([-1.0, 1, 1, 1]).tolist()), "reflection"),
        (lambda d: d.update(camera_model="EQUIRECTANGULAR"), "camera_model EQUIRECTANGULAR is not supported"),
        (lambda d: d.update(camera_model="KANNALA"), "unknown camera_model 'KANNALA'"),
        (lambda d: [d.pop("fl_x"), d.pop("fl_y")], "frame 0 (images/0000.png): no focal length"),
        (lambda d: d.update(fl_x=-5), "'fl_x' must be positive"),
        (lambda d: d.update(w=120), "image {root}/images/0000.png is 100x80 but the file declares w x h = 120x80"),
        (lambda d: d["frames"][2].update(file_path="images/0000.png"), "duplicate view: frame 0 (images/0000.png) and frame 2"),
        (lambda d: d["frames"][1].update(file_path="images/gone"), "frame 1 (images/gone): image file {root}/images/gone not"),
        (lambda d: d.update(test_filenames=["images/0007.png"], train_filenames=[]), "'test_filenames' lists 'images/0007"),
        (lambda d: d.update(aabb=[[0, 0, 0], [1, -1, 1]]), "'aabb' must be [[xmin"),
        (lambda d: d.update(background_color=[255, 255, 255]), "'background_color' must be 3 numbers in [0, 1]"),
        (lambda d: d.update(applied_transform=[[1, 0, 0]]), "'applied_transform' must be a 3x4 matrix"),
    ],
)
def test_bad_transforms_json(tmp_path, edit, problem):
    path = ngp_scene(tmp_path, RING)
    edit_json(path, edit)
    expect_error(path, problem.format(root=tmp_path), "transforms.json")


def test_images_of_different_sizes_without_declared_size(tmp_path):
    path = ngp_scene(tmp_path, RING, fl_x=None, fl_y=None, cx=None, cy=None, w=None, h=None, camera_angle_x=0.9)
    write_png(tmp_path / "images" / "0002.png", W + 2, H)
    problem = f"frame 2 (images/0002.png): image {tmp_path}/images/0002.png is 102x80 but frame 0"
    expect_error(path, problem, "transforms.json")


def test_image_that_is_not_an_image(tmp_path):
    path = ngp_scene(tmp_path, RING)
    (tmp_path / "images" / "0001.png").write_text("not a png")
    expect_error(path, "not a readable image", "0001.png")


def test_parallel_cameras_without_aabb(tmp_path):
    path = ngp_scene(tmp_path, [look_at((x, -5.0, 0.0), (x, 0.0, 0.0)) for x in (0.0, 1.0, 2.0)])
    expect_error(path, "camera axes are (nearly) parallel", "transforms.json")
    edit_json(path, lambda data: data.update(aabb=[[-1, -1, -1], [1, 1, 1]]))
    assert load_dataset(path).bbox.tolist() == [[-1, -1, -1], [1, 1, 1]]


def test_image_dir_with_transforms_json(tmp_path):
    expect_error(ngp_scene(tmp_path, RING), "image_dir='images_4' only applies to LLFF", "transforms.json", image_dir="images_4")


def test_llff_wrong_array_shape(tmp_path):
    np.save(tmp_path / "poses_bounds.npy", np.zeros((3, 15)))
    expect_error(tmp_path, "array has shape (3, 15), expected [N, 17]", "poses_bounds.npy")


def test_llff_not_an_npy_file(tmp_path):
    (tmp_path / "poses_bounds.npy").write_text("hello")
    expect_error(tmp_path, "not a readable .npy array", "poses_bounds.npy")


def test_llff_image_count_mismatch(tmp_path):
    llff_scene(tmp_path, RING)
    (tmp_path / "images" / "img001.jpg").unlink()
    expect_error(tmp_path, f"3 poses but 2 images in {tmp_path}/images", "poses_bounds.npy")


def test_llff_missing_image_folder(tmp_path):
    llff_scene(tmp_path, RING)
    problem = f"image folder {tmp_path}/images_8 not found"
    expect_error(tmp_path, problem, "poses_bounds.npy", image_dir="images_8")


def test_llff_bad_depth_bounds(tmp_path):
    llff_scene(tmp_path, RING, near=2.0, far=1.0)
    expect_error(tmp_path, "row 0: depth bounds near=2, far=1; need 0 < near < far", "poses_bounds.npy")


def test_llff_non_rigid_pose(tmp_path):
    llff_scene(tmp_path, RING)
    rows = np.load(tmp_path / "poses_bounds.npy")
    rows[1, :15].reshape(3, 5)[:, :3] *= 1.1  # reshape of a contiguous row is a view
    np.save(tmp_path / "poses_bounds.npy", rows)
    expect_error(tmp_path, "row 1: rotation part is scaled", "poses_bounds.npy")


def test_llff_images_not_a_downscale_of_the_poses_size(tmp_path):
    llff_scene(tmp_path, RING, image_size=(W, W))
    expect_error(tmp_path, "is 100x100, not a downscale of the 100x80", "poses_bounds.npy")


def write_ground_truth(root, **changes):
    (root / "meshes").mkdir(exist_ok=True)
    (root / "meshes" / "duck.ply").write_text("ply\n")
    (root / "masks").mkdir(exist_ok=True)
    Image.new("L", (W, H)).save(root / "masks" / "0000.png")
    data = {"version": 1, "objects": [{"index": 1, "name": "duck", "mesh": "meshes/duck.ply"}],
            "masks": {"0000": "masks/0000.png"}, **changes}
    write_json(root / "ground_truth.json", data)


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"version": 2}, "unsupported version 2, expected 1"),
        ({"masks": {"0000": "masks/none.png"}}, "mask of view '0000' not found"),
        ({"masks": {"9999": "masks/0000.png"}}, "mask for unknown view '9999'"),
        ({"objects": [{"index": 1, "name": "duck", "mesh": "meshes/duck.ply"},
                      {"index": 2, "name": "duck", "mesh": "meshes/duck.ply"}]}, "duplicate object name: duck"),
        ({"objects": [{"index": 0, "name": "duck", "mesh": "meshes/duck.ply"}]}, "index must be an integer in 1..255"),
        ({"objects": [{"index": 1, "name": "duck", "mesh": "meshes/gone.ply"}]}, "object 'duck': mesh file"),
        ({"objects": [{"name": "duck", "mesh": "meshes/duck.ply"}]},
         "object 0 must have a 'name' and an 'index' (into the index masks) or 'masks' of its own"),
        ({"objects": [{"name": "duck", "masks": {"9999": "masks/0000.png"}}]},
         "object 'duck': mask for unknown view '9999'"),
    ],
)
def test_bad_ground_truth(tmp_path, changes, problem):
    ngp_scene(tmp_path, RING)
    write_ground_truth(tmp_path, **changes)
    expect_error(tmp_path, problem, "ground_truth.json")


def test_ground_truth_lookups_name_the_problem(tmp_path):
    ngp_scene(tmp_path, RING)
    write_ground_truth(tmp_path)
    truth = load_dataset(tmp_path).ground_truth
    with pytest.raises(DatasetError, match=r"ground_truth.json: no object named 'cow'; the objects are: duck"):
        truth.object("cow")
    with pytest.raises(DatasetError, match=r"ground_truth.json: no mask for view '0001'"):
        truth.load_mask(1)
    Image.new("L", (W, H + 1)).save(tmp_path / "masks" / "0000.png")
    with pytest.raises(DatasetError, match=r"0000.png: mask is 100x81 but its view's image is 100x80 .not a scale"):
        truth.load_mask(0)
    Image.new("L", (2 * W, 2 * H), 1).save(tmp_path / "masks" / "0000.png")  # the full-size photos' annotation
    np.testing.assert_array_equal(truth.load_mask(0), np.ones((H, W)))
    Image.new("RGB", (W, H)).save(tmp_path / "masks" / "0000.png")
    with pytest.raises(DatasetError, match=r"0000.png: mask must be a single-channel 8-bit PNG, found mode RGB"):
        truth.load_mask(0)


def test_llff_reduced_folder_with_a_different_count(tmp_path):
    llff_scene(tmp_path, RING)
    (tmp_path / "images_4").mkdir()
    for k in range(2):
        (tmp_path / "images_4" / f"img{k:03d}.png").write_bytes((tmp_path / "images" / "img000.jpg").read_bytes())
    expect_error(tmp_path, f"3 poses but 2 images in {tmp_path}/images_4", "poses_bounds.npy")


def test_unknown_scene_type(tmp_path):
    expect_error(ngp_scene(tmp_path, RING), "unknown scene type 'sphere'", "", scene_type="sphere")
