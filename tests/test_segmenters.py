"""MobileSAM through the Segmenter interface on a synthetic image with known masks; checkpoint and prompt errors."""

from __future__ import annotations

import argparse
import re

import numpy as np
import pytest
import torch
from PIL import Image

from sa3d_blender.core.devices import pick_device
from sa3d_blender.core.errors import CheckpointError, PromptError, SA3DError
from sa3d_blender.core.segment.segmenters import ImageEmbedding, default_checkpoint, load_segmenter, to_sam_coords

WEIGHTS = default_checkpoint("mobile_sam")
needs_weights = pytest.mark.skipif(
    not WEIGHTS.exists(), reason=f"MobileSAM weights not found at {WEIGHTS} (scripts/setup_env.sh fetches them)"
)

SIZE = 128
DISC_CENTRE, DISC_RADIUS = (50.0, 56.0), 30.0
SQUARE = (64, 60, 104, 100)  # x0, y0, x1, y1 in pixel edges: covers the disc's lower right part


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def shapes_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(float RGB image, visible-disc mask, square mask): a red disc half hidden by a blue square on a striped ground."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE] + 0.5  # pixel centres
    noise = np.random.default_rng(0).normal(0.0, 0.04, (SIZE, SIZE, 1))
    image = (0.5 + 0.12 * np.sin(cols / 3.0)[..., None] + noise) * np.array([0.7, 0.85, 0.6])
    disc = (cols - DISC_CENTRE[0]) ** 2 + (rows - DISC_CENTRE[1]) ** 2 < DISC_RADIUS**2
    x0, y0, x1, y1 = SQUARE
    square = (cols > x0) & (cols < x1) & (rows > y0) & (rows < y1)
    image[disc] = (0.85, 0.1, 0.1)
    image[square] = (0.1, 0.2, 0.9)
    return np.clip(image, 0.0, 1.0).astype(np.float32), disc & ~square, square


@pytest.fixture(scope="module")
def scene():
    return shapes_scene()


@pytest.fixture(scope="module")
def embedding(segmenter, scene) -> ImageEmbedding:
    return segmenter.embed(scene[0])


# --- masks against the known shapes ---------------------------------------------------------------------------------


def test_embedding_describes_the_encoder_input(segmenter, embedding):
    assert segmenter.model_id == "mobile_sam:6dbb90523a35"
    assert embedding.model_id == segmenter.model_id
    assert embedding.features.shape == (256, 64, 64)
    assert embedding.original_size == (SIZE, SIZE)
    assert embedding.input_size == (1024, 1024)


def test_click_at_disc_centre_gives_the_visible_disc(segmenter, embedding, scene):
    _, disc, _ = scene
    result = segmenter.predict(embedding, np.array([DISC_CENTRE]), np.array([1]))
    assert result.masks.shape == (3, SIZE, SIZE) and result.masks.dtype == bool
    assert result.scores.shape == (3,) and result.logits.shape == (3, 256, 256)
    assert max(iou(mask, disc) for mask in result.masks) >= 0.9


def test_negative_click_on_square_keeps_square_out(segmenter, embedding, scene):
    _, disc, square = scene
    result = segmenter.predict(embedding, np.array([[40.5, 50.5], [84.0, 80.0]]), np.array([1, 0]), multimask=False)
    (mask,) = result.masks
    assert iou(mask, disc) >= 0.9
    assert (mask & square).sum() <= 0.02 * square.sum()


def test_clicks_on_both_shapes_give_their_union(segmenter, embedding, scene):
    _, disc, square = scene
    result = segmenter.predict(embedding, np.array([[40.5, 50.5], [84.0, 80.0]]), np.array([1, 1]), multimask=False)
    assert iou(result.masks[0], disc | square) >= 0.9


def test_box_around_square_gives_the_square(segmenter, embedding, scene):
    _, _, square = scene
    result = segmenter.predict(embedding, None, None, box=np.array(SQUARE, dtype=float))
    best = result.masks[np.argmax(result.scores)]
    assert iou(best, square) >= 0.9


def test_cached_float16_features_give_the_same_masks(segmenter, embedding, scene):
    half = ImageEmbedding(embedding.features.astype(np.float16), embedding.original_size, embedding.input_size,
                          embedding.model_id)
    click, label = np.array([[40.5, 50.5]]), np.array([1])
    full_masks = segmenter.predict(embedding, click, label).masks
    half_masks = segmenter.predict(half, click, label).masks
    assert all(iou(a, b) >= 0.98 for a, b in zip(full_masks, half_masks))


def test_pixel_centres_land_on_pixel_centres_of_the_encoder_input():
    # 128x96 (W x H) image resized to 1024x768: scale 8 on both axes. The centre of pixel (col 0, row 0) is (0.5, 0.5),
    # which is (4, 4) in the resized image; SamPredictor multiplies by 8 and SAM's prompt encoder adds 0.5.
    emb = ImageEmbedding(np.zeros((1, 1, 1), np.float32), original_size=(96, 128), input_size=(768, 1024), model_id="x")
    sam_xy = to_sam_coords(np.array([[0.5, 0.5], [128.0, 96.0]]), emb)
    assert np.allclose(sam_xy * 8 + 0.5, [[4.0, 4.0], [1024.0, 768.0]])


# --- prompt errors -------------------------------------------------------------------------------------------------


def test_click_outside_the_image_names_the_click_and_the_size(segmenter, embedding):
    with pytest.raises(PromptError, match=re.escape("click (130, 5) is outside the image of size 128x128")):
        segmenter.predict(embedding, np.array([[130.0, 5.0]]), np.array([1]))


def test_no_prompt_is_refused(segmenter, embedding):
    with pytest.raises(PromptError, match="no prompt"):
        segmenter.predict(embedding, None, None)


def test_clicks_and_labels_must_match(segmenter, embedding):
    with pytest.raises(PromptError, match=re.escape("2 click(s) but 1 label(s)")):
        segmenter.predict(embedding, np.array([[10.0, 10.0], [20.0, 20.0]]), np.array([1]))


def test_box_outside_the_image_is_refused(segmenter, embedding):
    with pytest.raises(PromptError, match="reaches outside the image of size 128x128"):
        segmenter.predict(embedding, None, None, box=np.array([10.0, 10.0, 140.0, 50.0]))


# --- checkpoint errors ---------------------------------------------------------------------------------------------


def test_missing_checkpoint_names_the_path(tmp_path):
    path = tmp_path / "nowhere.pt"
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: file not found")):
        load_segmenter("mobile_sam", path)


def test_text_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: not a PyTorch checkpoint: the file is a text file")):
        load_segmenter("mobile_sam", path)


def test_png_image_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "mobile_sam.pt"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path, format="PNG")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint: the file is a PNG image"):
        load_segmenter("mobile_sam", path)


@needs_weights
def test_truncated_checkpoint_is_reported_as_truncated(tmp_path):
    data = WEIGHTS.read_bytes()
    path = tmp_path / "mobile_sam.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: truncated or damaged PyTorch checkpoint")):
        load_segmenter("mobile_sam", path)


@pytest.fixture(scope="module")
def vit_b_checkpoint(tmp_path_factory):
    """A file with exactly the official ViT-B state dict's names and shapes; all weights zero, ~100 kB on disk."""
    from segment_anything import sam_model_registry

    with torch.device("meta"):  # the real ViT-B layout without allocating its 90M parameters
        shapes = {k: v.shape for k, v in sam_model_registry["vit_b"]().state_dict().items()}
    path = tmp_path_factory.mktemp("checkpoints") / "sam_vit_b.pth"
    torch.save({k: torch.zeros(()).expand(shape) for k, shape in shapes.items()}, path)  # expand: one stored number
    return path


def test_vit_b_checkpoint_given_as_mobile_sam_is_recognised(vit_b_checkpoint):
    with pytest.raises(CheckpointError, match="this is a vit_b checkpoint, not mobile_sam; load it with kind='vit_b'"):
        load_segmenter("mobile_sam", vit_b_checkpoint)


def test_vit_b_checkpoint_loads_into_the_official_sam(vit_b_checkpoint):
    segmenter = load_segmenter("vit_b", vit_b_checkpoint, device="cpu")
    assert segmenter.model_id.startswith("vit_b:") and len(segmenter.model_id) == len("vit_b:") + 12


@needs_weights
def test_mobile_sam_checkpoint_given_as_vit_h_is_recognised():
    with pytest.raises(CheckpointError, match="this is a mobile_sam checkpoint, not vit_h"):
        load_segmenter("vit_h", WEIGHTS)


def test_state_dict_of_another_model_is_refused(tmp_path):
    path = tmp_path / "field.pt"
    torch.save({"density.grid": torch.zeros(1, 1, 4, 4, 4)}, path)
    with pytest.raises(CheckpointError, match=r"not a SAM/MobileSAM checkpoint for mobile_sam: 1 tensors .*density\.grid"):
        load_segmenter("mobile_sam", path)


def test_pickled_python_objects_are_not_unpickled(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"args": argparse.Namespace(lr=0.1)}, path)  # training scripts often save their arguments
    with pytest.raises(CheckpointError, match="holds Python objects besides tensors"):
        load_segmenter("mobile_sam", path)


@needs_weights
def test_checkpoint_missing_a_tensor_does_not_fit(tmp_path):
    state = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    del state["mask_decoder.iou_prediction_head.layers.2.bias"]
    path = tmp_path / "mobile_sam_pruned.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"does not fit the mobile_sam model: Missing key.*iou_prediction_head"):
        load_segmenter("mobile_sam", path)


def test_unknown_kind_lists_the_kinds():
    with pytest.raises(SA3DError, match="unknown segmenter kind 'sam2'; choose one of mobile_sam, vit_b, vit_l, vit_h"):
        load_segmenter("sam2")


def test_official_sam_kinds_need_a_checkpoint_path():
    assert default_checkpoint("vit_b") is None
    with pytest.raises(SA3DError, match="'vit_b' needs a checkpoint path"):
        load_segmenter("vit_b")


def test_default_checkpoint_follows_sa3d_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("SA3D_CACHE", str(tmp_path))
    assert default_checkpoint("mobile_sam") == tmp_path / "weights" / "mobile_sam.pt"
    with pytest.raises(CheckpointError, match="run scripts/setup_env.sh"):
        load_segmenter("mobile_sam")


# --- devices -------------------------------------------------------------------------------------------------------


def test_cpu_device_takes_thread_count_from_environment(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("SA3D_THREADS", "1")
    try:
        assert pick_device("cpu") == torch.device("cpu")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_bad_thread_count_is_reported(monkeypatch):
    monkeypatch.setenv("SA3D_THREADS", "many")
    with pytest.raises(SA3DError, match="SA3D_THREADS='many' is not a positive whole number"):
        pick_device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_forcing_missing_cuda_is_a_clear_error():
    with pytest.raises(SA3DError, match="'cuda' was requested but torch sees no usable CUDA GPU"):
        pick_device("cuda")


def test_unknown_device_lists_the_choices():
    with pytest.raises(SA3DError, match="unknown device 'gpu'; choose one of auto, cuda, mps, cpu"):
        pick_device("gpu")
