"""Read SAM / MobileSAM checkpoints safely and tell which model a state dict belongs to, with errors naming the file."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from ..errors import CheckpointError

ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format is a zip archive
PICKLE_MAGIC = b"\x80"  # legacy torch.save format starts with a pickle protocol marker
KNOWN_HEADERS = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"%PDF": "a PDF document"}
SAM_PARTS = ("image_encoder.", "prompt_encoder.", "mask_decoder.")
VIT_KIND_BY_WIDTH = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}


def _describe_foreign_file(header: bytes) -> str:
    for magic, what in KNOWN_HEADERS.items():
        if header.startswith(magic):
            return what
    try:
        header.decode("utf-8")
    except UnicodeDecodeError:
        return "an unknown binary file"
    return "a text file"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, loaded without unpickling arbitrary objects."""
    if not path.exists():
        raise CheckpointError(path, "file not found")
    if not path.is_file():
        raise CheckpointError(path, "is a directory, not a checkpoint file")
    with open(path, "rb") as f:
        header = f.read(16)
    if not header:
        raise CheckpointError(path, "file is empty")
    if not (header.startswith(ZIP_MAGIC) or header.startswith(PICKLE_MAGIC)):
        raise CheckpointError(path, f"not a PyTorch checkpoint: the file is {_describe_foreign_file(header)}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc):
            raise CheckpointError(
                path, "holds Python objects besides tensors; refusing to unpickle it (only plain state dicts are loaded)"
            ) from exc
        raise CheckpointError(path, f"damaged PyTorch checkpoint ({exc})") from exc
    except Exception as exc:  # torch reports truncation as RuntimeError, EOFError, IndexError... depending on where it stops
        size = path.stat().st_size
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(path, f"truncated or damaged PyTorch checkpoint ({size} bytes): {first_line}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(path, f"holds a {type(state).__name__}, not a state dict of tensors")
    return state


def guess_kind(state: dict[str, torch.Tensor]) -> str | None:
    """'mobile_sam', 'vit_b', 'vit_l' or 'vit_h' judged from the image encoder's keys; None when it is not SAM."""
    if not all(any(key.startswith(part) for key in state) for part in SAM_PARTS):
        return None
    if "image_encoder.patch_embed.seq.0.c.weight" in state:  # TinyViT's convolutional stem
        return "mobile_sam"
    pos_embed = state.get("image_encoder.pos_embed")
    if pos_embed is not None:
        return VIT_KIND_BY_WIDTH.get(int(pos_embed.shape[-1]))
    return None


def check_kind(path: Path, state: dict[str, torch.Tensor], kind: str) -> None:
    """Raise CheckpointError when the state dict is not the weights of `kind`, saying what it looks like instead."""
    found = guess_kind(state)
    if found == kind:
        return
    if found is not None:
        raise CheckpointError(path, f"this is a {found} checkpoint, not {kind}; load it with kind={found!r}")
    example = ", ".join(list(state)[:3]) or "no tensors"
    raise CheckpointError(
        path, f"not a SAM/MobileSAM checkpoint for {kind}: {len(state)} tensors with unexpected names (e.g. {example})"
    )
