"""Field checkpoints round-trip exactly and refuse damaged or foreign files with a message naming the file."""

import numpy as np
import pytest
import torch

from sa3d_blender.core.data.cameras import Cameras
from sa3d_blender.core.errors import CheckpointError
from sa3d_blender.core.field.field_checkpoint import load_field, save_field
from sa3d_blender.core.field.field_space import contraction_around, ndc_for_cameras
from sa3d_blender.core.field.voxel_field import FieldConfig, VoxelField


@pytest.fixture()
def saved(tmp_path):
    field = VoxelField(np.array([[-1, -2, 0], [1, 2, 1.0]]), (9, 17, 5), FieldConfig(sh_degree=1))
    with torch.no_grad():
        field.density.normal_()
        field.color.normal_()
    field.update_occupancy()
    cameras = Cameras(np.eye(4)[None], [50.0], [50.0], [32.0], [24.0], [64], [48], ["v0"], [None])
    path = save_field(tmp_path / "field.pt", field, cameras, extra={"dataset": "/data/x"})
    return field, path


def test_round_trip_keeps_grids_cameras_and_extra(saved):
    field, path = saved
    loaded, cameras, extra = load_field(path)
    assert loaded.shape == field.shape and loaded.config == field.config
    assert torch.equal(loaded.density, field.density) and torch.equal(loaded.color, field.color)
    assert torch.equal(loaded.occupancy, field.occupancy)
    assert cameras.names == ["v0"] and cameras.fx[0] == 50.0
    assert extra == {"dataset": "/data/x"}
    assert not list(path.parent.glob("*.tmp"))


def test_truncated_checkpoint_is_reported(saved, tmp_path):
    _, path = saved
    broken = tmp_path / "broken.pt"
    broken.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"broken\.pt: not a readable field checkpoint"):
        load_field(broken)


def test_checkpoint_of_another_version_is_reported(saved, tmp_path):
    _, path = saved
    payload = torch.load(path, weights_only=True)
    payload["version"] = 99
    other = tmp_path / "other.pt"
    torch.save(payload, other)
    with pytest.raises(CheckpointError, match=r"other\.pt: field checkpoint version 99 .* retrain"):
        load_field(other)


def test_foreign_files_are_reported(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match=r"notes\.pt: not a readable field checkpoint"):
        load_field(text)
    sam_like = tmp_path / "sam.pt"
    torch.save({"image_encoder.weight": torch.zeros(2)}, sam_like)
    with pytest.raises(CheckpointError, match=r"sam\.pt: not an sa3d_blender field checkpoint"):
        load_field(sam_like)
    with pytest.raises(CheckpointError, match=r"missing\.pt: field checkpoint not found"):
        load_field(tmp_path / "missing.pt")


def test_contracted_and_ndc_fields_round_trip(tmp_path):
    """Both field spaces survive a weights-only checkpoint (made from numpy camera values, as training makes them)."""
    c2w = np.repeat(np.eye(4)[None], 2, axis=0)
    c2w[1, 0, 3] = 0.5
    cameras = Cameras(c2w=c2w, fx=[50.0, 50], fy=[50.0, 50], cx=[20.0, 20], cy=[15.0, 15], width=[40, 40],
                      height=[30, 30], names=["a", "b"], image_paths=[None, None])
    for space in (contraction_around(np.array([[-1.0, -1, -4], [1, 1, -2]])), ndc_for_cameras(cameras, 1.0, 3.0)):
        field = VoxelField(space.field_bbox(), (6, 6, 6), FieldConfig(), space=space)
        loaded, _, _ = load_field(save_field(tmp_path / f"{space.kind}.pt", field, cameras))
        assert loaded.space == space
