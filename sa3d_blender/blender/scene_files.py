"""File writers of the scene generator that need only numpy: 8-bit grey PNG masks and binary PLY meshes."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np

from ..core.atomic_files import atomic_write


def _replace_atomically(path: Path, data: bytes) -> None:
    with atomic_write(path) as f:
        f.write(data)


def write_json(path: Path, payload: dict) -> None:
    _replace_atomically(path, (json.dumps(payload, indent=2) + "\n").encode())


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def write_png_gray8(path: Path, values: np.ndarray) -> None:
    """Write a [H,W] uint8 array as a single-channel 8-bit PNG (exact values, no colour management)."""
    if values.dtype != np.uint8 or values.ndim != 2:
        raise ValueError(f"expected a 2D uint8 array, got {values.dtype} {values.shape}")
    height, width = values.shape
    # every scanline starts with filter type 0 (None)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), values], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale, no interlace
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw, 9))
        + _png_chunk(b"IEND", b"")
    )
    _replace_atomically(path, data)


def write_ply(path: Path, vertices: np.ndarray, triangles: np.ndarray) -> None:
    """Write a triangle mesh ([V,3] float positions, [F,3] int indices) as binary little-endian PLY."""
    vertices = np.ascontiguousarray(vertices, dtype="<f4")
    faces = np.empty(len(triangles), dtype=[("count", "u1"), ("indices", "<i4", (3,))])
    faces["count"] = 3
    faces["indices"] = triangles
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    _replace_atomically(path, header.encode("ascii") + vertices.tobytes() + faces.tobytes())
