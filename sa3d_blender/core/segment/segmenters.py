"""Promptable 2D segmenters (MobileSAM, SAM ViT-B/L/H): encode an image once, then predict masks from clicks or a box."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch

from ..cache_folder import cache_root, file_sha256
from ..devices import pick_device
from ..errors import CheckpointError, PromptError, SA3DError
from .segmenter_checkpoints import check_kind, read_state_dict

log = logging.getLogger(__name__)


@dataclass
class ImageEmbedding:
    """What one encoder pass produces; small enough to cache on disk per view."""

    features: np.ndarray  # float16 or float32 [C,h,w] as returned by the encoder
    original_size: tuple[int, int]  # (H, W) of the image that was embedded
    input_size: tuple[int, int]  # (H, W) of the resized image fed to the encoder
    model_id: str


@dataclass
class SegmenterResult:
    masks: np.ndarray  # bool [K,H,W] at the embedded image's size
    scores: np.ndarray  # float32 [K] the model's predicted IoU of each mask
    logits: np.ndarray  # float32 [K,256,256] low-resolution mask logits


class Segmenter(Protocol):
    model_id: str  # kind + sha256 prefix of the checkpoint, e.g. "mobile_sam:6dbb90523a35"

    def embed(self, image: np.ndarray) -> ImageEmbedding: ...

    def predict(
        self,
        emb: ImageEmbedding,
        points: np.ndarray | None,
        labels: np.ndarray | None,
        box: np.ndarray | None = None,
        multimask: bool = True,
    ) -> SegmenterResult: ...


def _build_mobile_sam() -> torch.nn.Module:
    # mobile_sam registers TinyViT with timm through deprecated paths; the warnings say nothing a user can act on
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mobile_sam.build_sam import build_sam_vit_t
    return build_sam_vit_t()


def _official_builder(kind: str) -> Callable[[], torch.nn.Module]:
    def build() -> torch.nn.Module:
        from segment_anything import sam_model_registry

        return sam_model_registry[kind]()

    return build


BUILDERS: dict[str, Callable[[], torch.nn.Module]] = {
    "mobile_sam": _build_mobile_sam,
    "vit_b": _official_builder("vit_b"),
    "vit_l": _official_builder("vit_l"),
    "vit_h": _official_builder("vit_h"),
}
DEFAULT_CHECKPOINT_NAMES = {"mobile_sam": "mobile_sam.pt"}  # the other kinds have no redistributable weights
MODEL_ID_DIGEST_CHARS = 12


def _check_kind_name(kind: str) -> None:
    if kind not in BUILDERS:
        raise SA3DError(f"unknown segmenter kind {kind!r}; choose one of {', '.join(BUILDERS)}")


def default_checkpoint(kind: str) -> Path | None:
    """Where the set-up script puts the weights of `kind`; None for kinds whose checkpoint the user must supply."""
    _check_kind_name(kind)
    name = DEFAULT_CHECKPOINT_NAMES.get(kind)
    return cache_root() / "weights" / name if name else None


def to_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """An [H,W,3] RGB image as uint8, from uint8 or float in [0,1]; the encoder and the cache key both use this form."""
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"expected an RGB image of shape [H,W,3], got {image.shape}")
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"expected a uint8 or float image, got dtype {image.dtype}")
    return np.ascontiguousarray(np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8))


def _prompt_arrays(
    emb: ImageEmbedding, points: np.ndarray | None, labels: np.ndarray | None, box: np.ndarray | None
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Validated prompts as float points [N,2], int labels [N] and box [4], in this project's pixel convention."""
    height, width = emb.original_size
    size = f"{width}x{height} (width x height)"
    if (points is None or len(points) == 0) and box is None:
        raise PromptError("no prompt: give at least one click or a box")
    if points is not None and len(points) == 0:
        points = None
    if points is not None:
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if labels is None:
            raise PromptError(f"{len(points)} click(s) given without labels (1 = object, 0 = background)")
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != len(points):
            raise PromptError(f"{len(points)} click(s) but {len(labels)} label(s)")
        if not np.isin(labels, (0, 1)).all():
            raise PromptError(f"click labels must be 1 (object) or 0 (background), got {labels.tolist()}")
        for x, y in points:
            if not (0.0 <= x <= width and 0.0 <= y <= height):
                raise PromptError(f"click ({x:g}, {y:g}) is outside the image of size {size}")
        labels = labels.astype(np.int64)
    if box is not None:
        box = np.asarray(box, dtype=np.float64).reshape(-1)
        if box.shape != (4,):
            raise PromptError(f"a box is [x0, y0, x1, y1], got {box.size} numbers")
        x0, y0, x1, y1 = box
        if not (x0 < x1 and y0 < y1):
            raise PromptError(f"box {box.tolist()} is empty: it needs x0 < x1 and y0 < y1")
        if not (0.0 <= x0 and x1 <= width and 0.0 <= y0 and y1 <= height):
            raise PromptError(f"box {box.tolist()} reaches outside the image of size {size}")
    return points, labels, box


def to_sam_coords(xy: np.ndarray, emb: ImageEmbedding) -> np.ndarray:
    """Shift continuous pixel coordinates (centre of col j at j+0.5) into the frame SamPredictor expects.

    SamPredictor scales coordinates to the encoder's resized image and SAM's prompt encoder then adds 0.5 there (it treats
    them as pixel indices). Subtracting 0.5/scale first makes a point land exactly where it is in the resized image.
    """
    scale_y = emb.input_size[0] / emb.original_size[0]
    scale_x = emb.input_size[1] / emb.original_size[1]
    shift = np.array([0.5 / scale_x, 0.5 / scale_y])
    return (xy.reshape(-1, 2) - shift).reshape(xy.shape)


class SamSegmenter:
    """A SAM-family model behind the official SamPredictor (its resize to 1024 and pixel normalisation).

    Not thread-safe: the predictor holds one image's features at a time.
    """

    def __init__(self, model: torch.nn.Module, model_id: str, device: torch.device):
        from segment_anything import SamPredictor

        self.model_id = model_id
        self.device = device
        self._predictor = SamPredictor(model.to(device).eval())

    def embed(self, image: np.ndarray) -> ImageEmbedding:
        rgb = to_uint8_rgb(image)
        with torch.inference_mode():
            self._predictor.set_image(rgb)
        features = self._predictor.features[0].float().cpu().numpy()
        return ImageEmbedding(
            features=features,
            original_size=tuple(int(v) for v in self._predictor.original_size),
            input_size=tuple(int(v) for v in self._predictor.input_size),
            model_id=self.model_id,
        )

    def _use_embedding(self, emb: ImageEmbedding) -> None:
        if emb.model_id != self.model_id:
            raise ValueError(f"embedding was computed by {emb.model_id}, this segmenter is {self.model_id}")
        predictor = self._predictor
        predictor.reset_image()
        # SamPredictor keeps the encoder output in these attributes; setting them skips re-encoding a cached view
        predictor.features = torch.as_tensor(emb.features, device=self.device).float()[None]
        predictor.original_size = emb.original_size
        predictor.input_size = emb.input_size
        predictor.is_image_set = True

    def predict(
        self,
        emb: ImageEmbedding,
        points: np.ndarray | None,
        labels: np.ndarray | None,
        box: np.ndarray | None = None,
        multimask: bool = True,
    ) -> SegmenterResult:
        points, labels, box = _prompt_arrays(emb, points, labels, box)
        self._use_embedding(emb)
        with torch.inference_mode():
            masks, scores, logits = self._predictor.predict(
                point_coords=None if points is None else to_sam_coords(points, emb),
                point_labels=labels,
                box=None if box is None else to_sam_coords(box, emb),
                multimask_output=multimask,
            )
        return SegmenterResult(masks=masks.astype(bool), scores=scores.astype(np.float32), logits=logits.astype(np.float32))


def load_segmenter(kind: str = "mobile_sam", checkpoint: str | Path | None = None, device: str = "auto") -> Segmenter:
    """Build `kind` and load its weights; CheckpointError names the file when it is missing, damaged or another model."""
    _check_kind_name(kind)
    torch_device = pick_device(device)
    path = Path(checkpoint).expanduser() if checkpoint is not None else default_checkpoint(kind)
    if path is None:
        raise SA3DError(f"segmenter kind {kind!r} needs a checkpoint path (the official SAM {kind} weights)")
    if checkpoint is None and not path.exists():
        raise CheckpointError(path, "MobileSAM weights not found; run scripts/setup_env.sh to fetch them")
    state = read_state_dict(path)
    check_kind(path, state, kind)
    model = BUILDERS[kind]()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        # torch's message is a header line, then one line per kind of mismatch: keep the first mismatch
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0] if lines else type(exc).__name__
        raise CheckpointError(path, f"does not fit the {kind} model: {detail[:300]}") from exc
    model_id = f"{kind}:{file_sha256(path)[:MODEL_ID_DIGEST_CHARS]}"
    log.info("loaded %s from %s on %s", model_id, path, torch_device)
    return SamSegmenter(model, model_id, torch_device)
