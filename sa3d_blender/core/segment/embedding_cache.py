"""On-disk cache of SAM image embeddings, one .npz per (image content, model), so each view is encoded only once."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..atomic_files import atomic_write
from .segmenters import ImageEmbedding, Segmenter, to_uint8_rgb

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]


def image_digest(image: np.ndarray) -> str:
    """sha256 of the uint8 RGB pixels and their shape: equal images share an entry whatever their float/uint8 form."""
    rgb = to_uint8_rgb(image)
    digest = hashlib.sha256(f"{rgb.shape[0]}x{rgb.shape[1]}x{rgb.shape[2]}:".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


class EmbeddingCache:
    """A folder of embeddings keyed by image content and segmenter.model_id; features are stored as float16.

    float16 halves the disk use; the masks SAM decodes from it match the float32 ones (IoU >= 0.98, see the tests).
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def path_for(self, model_id: str, image: np.ndarray) -> Path:
        # ':' in model ids is not allowed in Windows file names
        return self.folder / f"{model_id.replace(':', '-')}_{image_digest(image)[:32]}.npz"

    def _load(self, path: Path, model_id: str) -> ImageEmbedding | None:
        """The cached embedding, or None when the file is absent or unusable (then it is recomputed)."""
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                emb = ImageEmbedding(
                    features=data["features"],
                    original_size=tuple(int(v) for v in data["original_size"]),
                    input_size=tuple(int(v) for v in data["input_size"]),
                    model_id=str(data["model_id"]),
                )
        except Exception as exc:  # a damaged .npz can fail in zipfile, numpy's header parser or a missing key
            log.warning("embedding cache file %s is unreadable (%s); recomputing it", path, exc)
            return None
        if emb.model_id != model_id or emb.features.ndim != 3:
            log.warning("embedding cache file %s does not hold a %s embedding; recomputing it", path, model_id)
            return None
        return emb

    def _save(self, path: Path, emb: ImageEmbedding) -> None:
        with atomic_write(path) as f:
            np.savez(f, features=emb.features.astype(np.float16), original_size=np.array(emb.original_size),
                     input_size=np.array(emb.input_size), model_id=np.array(emb.model_id))

    def _fetch(self, segmenter: Segmenter, image: np.ndarray, progress: Progress | None) -> tuple[ImageEmbedding, bool]:
        """(embedding, whether it had to be encoded)."""
        path = self.path_for(segmenter.model_id, image)
        emb = self._load(path, segmenter.model_id)
        if emb is not None:
            return emb, False
        if progress is not None:
            progress(0.0, "encoding image with " + segmenter.model_id)
        emb = segmenter.embed(image)
        self._save(path, emb)
        return emb, True

    def get_or_compute(self, segmenter: Segmenter, image: np.ndarray, progress: Progress | None = None) -> ImageEmbedding:
        """The cached embedding of `image`, or encode it (telling `progress` before the slow part) and store it."""
        return self._fetch(segmenter, image, progress)[0]

    def embed_views(
        self,
        segmenter: Segmenter,
        images: Sequence[np.ndarray] | Callable[[int], np.ndarray],
        progress: Progress | None = None,
        count: int | None = None,
    ) -> list[ImageEmbedding]:
        """Embeddings of all views, encoding only the ones not cached yet.

        `images` is a sequence of images or a loader `i -> image` (then `count` says how many views), so a large
        dataset need not sit in memory. `progress(fraction, message)` is called before each encode and at the end.
        """
        if callable(images):
            if count is None:
                raise ValueError("embed_views needs count= when images is a loader function")
            load = images
        else:
            count = len(images)
            load = images.__getitem__
        embeddings = []
        encoded = 0
        for i in range(count):

            def view_progress(fraction: float, message: str, i: int = i) -> None:
                progress((i + fraction) / count, f"view {i + 1}/{count}: {message}")

            emb, was_encoded = self._fetch(segmenter, load(i), view_progress if progress is not None else None)
            embeddings.append(emb)
            encoded += was_encoded
        summary = f"{count} view embeddings ready ({encoded} encoded, {count - encoded} from the cache)"
        log.info("%s in %s", summary, self.folder)
        if progress is not None:
            progress(1.0, summary)
        return embeddings
