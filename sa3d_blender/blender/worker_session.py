"""The one worker process the add-on talks to, and what it currently holds (which field is prepared for segmentation).

Kept at module level so every operator shares it; restarted when the worker preferences change, stopped on
unregister and at exit. Plain Python (no bpy), so jobs can be cancelled from anywhere.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from ..core.cache_folder import cache_root
from ..worker.client import WorkerClient
from ..worker.environment import COMPLETE, venv_python

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSettings:
    python: str
    device: str = "auto"
    segmenter: str = "mobile_sam"
    sam_checkpoint: str | None = None


def default_worker_python(own_venv: Path | None = None) -> str:
    """The Python that runs the worker when the preferences name none: `own_venv` (made by Set Up Worker) when
    complete, else the newest complete venv of scripts/setup_env.sh (in $SA3D_CACHE or ~/.cache/sa3d_blender), else
    sys.executable (with the bpy wheel that is a Python with torch already; Blender's own has none, so inside Blender
    one of the first two is what works)."""
    if own_venv is not None and (own_venv / COMPLETE).is_file():
        return str(venv_python(own_venv))
    venvs = [venv for venv in cache_root().glob("venv-*") if (venv / COMPLETE).is_file() and venv_python(venv).exists()]
    if venvs:
        return str(venv_python(max(venvs, key=lambda venv: venv.stat().st_mtime)))
    return sys.executable


class _Session:
    client: WorkerClient | None = None
    settings: WorkerSettings | None = None
    prepared: tuple | None = None  # (dataset, checkpoint, settings) the worker is ready to segment
    segmented: set[str] = set()  # objects whose 3D mask the worker holds
    busy: bool = False  # a job operator is running
    cancel_requested: bool = False
    undo_generation: int = 0  # counts undo/redo steps: a job started before one must not apply its result


_session = _Session()


def client(settings: WorkerSettings) -> WorkerClient:
    """The shared client for these settings; a client made with other settings is stopped first."""
    if _session.client is not None and _session.settings != settings:
        release()
    if _session.client is None:
        _session.client = WorkerClient(python=settings.python, device=settings.device)
        _session.settings = settings
    if not _session.client.alive:
        mark_prepared(None)  # a new process holds nothing yet
    return _session.client


def running_client() -> WorkerClient | None:
    return _session.client


def release() -> None:
    """Stop the worker process (gives its memory, GPU memory included, back); the next job starts a new one."""
    if _session.client is not None:
        log.info("stopping the SA3D worker")
        _session.client.stop()
    _session.client = None
    _session.settings = None
    mark_prepared(None)


def status_text() -> str:
    """One line for the panel: whether the worker runs, and on which device (CPU, CUDA, MPS) with which torch."""
    client = _session.client
    if client is None or not client.alive:
        return "Worker: not running (starts with the next job)"
    if client.starting:
        return "Worker: starting (loading torch)..."
    info = client.ready_info or {}
    return f"Worker: {info.get('device', '?')}, torch {info.get('torch', '?')}, pid {info.get('pid', '?')}"


def forget_file() -> None:
    """Another .blend was loaded: its jobs are cancelled, the busy state cleared, and the worker's field and masks are
    no longer taken for the new file's (the next job loads the field again)."""
    if _session.client is not None:
        _session.client.cancel_all()
    set_busy(False)
    mark_prepared(None)


def is_prepared(key: tuple) -> bool:
    return _session.prepared == key and _session.client is not None and _session.client.alive


def mark_prepared(key: tuple | None) -> None:
    _session.prepared = key
    _session.segmented = set()


def is_segmented(name: str) -> bool:
    return name in _session.segmented


def mark_segmented(name: str) -> None:
    _session.segmented.add(name)


def is_busy() -> bool:
    return _session.busy


def set_busy(busy: bool) -> None:
    _session.busy = busy
    _session.cancel_requested = False


def request_cancel() -> None:
    """Ask the running job operator to cancel its worker job at the next progress message or timer tick."""
    _session.cancel_requested = _session.busy


def cancel_requested() -> bool:
    return _session.cancel_requested


def undo_generation() -> int:
    return _session.undo_generation


def scene_undone() -> None:
    """An undo or redo replaced the scene data: a running job is cancelled (its steps hold the old data)."""
    _session.undo_generation += 1
    if _session.busy and _session.client is not None:
        _session.client.cancel_all()
