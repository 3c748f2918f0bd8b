"""Errors a user can act on: each names the file (or input) and the problem."""

from __future__ import annotations

from pathlib import Path


class SA3DError(Exception):
    """Base class of every error the CLI, the worker and Blender report as a message rather than a traceback."""


class InputFileError(SA3DError):
    """A file the user gave is missing, unreadable or malformed."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class DatasetError(InputFileError):
    """A dataset (transforms.json, poses_bounds.npy, its images) is missing or inconsistent."""


class CheckpointError(InputFileError):
    """A checkpoint (radiance field or SAM weights) is missing, truncated, of the wrong kind or of another version."""


class PromptError(SA3DError):
    """A click, box or prompts file that cannot be used (outside the image, unknown view, wrong shape)."""


class Cancelled(SA3DError):
    """A long job was cancelled by the user; raised from inside the progress callback."""
