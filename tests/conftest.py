"""Shared fixtures: generated scenes, rendered once per generator version and cached across test runs.

Scenes are rendered by `python -m sa3d_blender make-scene` in a subprocess, so bpy never shares a process with torch.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sa3d_blender.core.cache_folder import cache_root

REPO = Path(__file__).resolve().parents[1]
GENERATOR_SOURCES = sorted((REPO / "sa3d_blender" / "blender").glob("scene_*.py")) + [
    REPO / "sa3d_blender" / "cli" / "make_scene.py"
]


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", choices=("cpu", "cuda", "mps"),
                     help="torch device of tests/test_device_parity.py (scripts/gpu_check.sh runs it with cuda)")


@pytest.fixture(scope="session")
def device(request) -> str:
    return request.config.getoption("--device")


def field_code_digest() -> str:
    """A digest of the code a trained field depends on (core/field and core/data): cached test fields are keyed by it,
    so they are retrained whenever that code changes."""
    digest = hashlib.sha256()
    core = REPO / "sa3d_blender" / "core"
    for source in sorted([*(core / "field").glob("*.py"), *(core / "data").glob("*.py")]):
        digest.update(source.read_bytes())
    return digest.hexdigest()


def generator_hash() -> str:
    """Changes whenever the generator's source changes, so stale cached scenes are never reused."""
    digest = hashlib.sha256()
    for path in GENERATOR_SOURCES:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def run_make_scene(out: Path, *options: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the make-scene command in a fresh interpreter; returns the finished process (not checked)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.run(
        [sys.executable, "-m", "sa3d_blender", "make-scene", str(out), *options, "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cached_scene(preset: str, seed: int = 0, *options: str) -> Path:
    """The scene of `preset`/`seed` (with make-scene `options` such as --views) for the current generator source,
    rendered on first use."""
    scenes = cache_root() / "scenes"
    scenes.mkdir(parents=True, exist_ok=True)
    suffix = "".join(o.strip("-") for o in options)
    scene = scenes / f"{preset}-{seed}{'-' + suffix if suffix else ''}-{generator_hash()}"
    with open(scenes / f".{scene.name}.lock", "w") as lock:
        # another pytest process may be rendering the same scene: wait for it instead of rendering twice
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (scene / "transforms.json").is_file():
            result = run_make_scene(scene, "--preset", preset, "--seed", str(seed), *options, "--overwrite")
            if result.returncode != 0:
                raise RuntimeError(f"make-scene {preset} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return scene


@pytest.fixture(scope="session")
def tiny_scene() -> Path:
    return cached_scene("tiny")


@pytest.fixture(scope="session")
def demo_scene() -> Path:
    return cached_scene("demo")


@pytest.fixture(scope="session")
def room_scene() -> Path:
    """The room preset (walls far beyond the objects, cameras near and far, a ball in a tray), reduced for tests."""
    return cached_scene("room", 0, "--views", "30", "--resolution", "112")


@pytest.fixture(scope="session")
def segmenter():
    """The real MobileSAM (weights fetched by scripts/setup_env.sh; a clear CheckpointError if they are missing)."""
    from sa3d_blender.core.segment.segmenters import load_segmenter

    return load_segmenter("mobile_sam", device="cpu")
