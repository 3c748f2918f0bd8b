"""Choose the torch device (CUDA, then Apple MPS, then CPU) and the CPU thread count."""

from __future__ import annotations

import logging
import os

import torch

from .errors import SA3DError

log = logging.getLogger(__name__)

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")
THREADS_ENV = "SA3D_THREADS"


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def cpu_thread_count() -> int:
    """Threads torch should use on CPU: $SA3D_THREADS when set, else the cores this process may run on."""
    value = os.environ.get(THREADS_ENV)
    if value is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise SA3DError(f"{THREADS_ENV}={value!r} is not a positive whole number of threads")
    return threads


def pick_device(preference: str = "auto") -> torch.device:
    """The device to run torch on; a forced device that is not available raises SA3DError.

    Nothing here enables autocast: bf16 autocast on CPUs without native bf16 is ~40x slower, so CPU work stays fp32.
    """
    if preference not in DEVICE_CHOICES:
        raise SA3DError(f"unknown device {preference!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if preference == "cuda" and not torch.cuda.is_available():
        raise SA3DError("device 'cuda' was requested but torch sees no usable CUDA GPU; use 'auto' or 'cpu'")
    if preference == "mps" and not _mps_available():
        raise SA3DError("device 'mps' was requested but Apple MPS is not available here; use 'auto' or 'cpu'")
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    if preference == "cpu":
        threads = cpu_thread_count()
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
            log.debug("torch uses %d CPU threads", threads)
    return torch.device(preference)
