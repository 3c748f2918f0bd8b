"""Prompts files: the clicks (and optional box) that name each object to segment, read and checked in one place.

    {"objects": [{"name": "duck", "view": "0003", "points": [[x, y], ...], "labels": [1, 0, ...],
                  "box": [x0, y0, x1, y1], "mask_choice": 0}]}
Pixel coordinates: origin at the image's top-left corner (pixel centres at +0.5), x right, y down.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.cameras import Cameras
from ..errors import PromptError


@dataclass
class ObjectPrompt:
    name: str
    view: str
    points: np.ndarray  # [N,2]
    labels: np.ndarray  # [N]
    box: np.ndarray | None = None
    mask_choice: int | None = None

    def to_request(self) -> dict:
        """JSON-able form (the worker's `segment` parameters)."""
        request = {"name": self.name, "view": self.view, "points": self.points.tolist(), "labels": self.labels.tolist()}
        if self.box is not None:
            request["box"] = self.box.tolist()
        if self.mask_choice is not None:
            request["mask_choice"] = self.mask_choice
        return request


def read_prompts(path: Path, cameras: Cameras | None = None) -> list[ObjectPrompt]:
    """Parse and check a prompts file (against `cameras` when given: view names, clicks inside the image);
    PromptError naming the file, the object and the problem."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise PromptError(f"{path}: cannot read the prompts file ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise PromptError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("objects"), list) or not data["objects"]:
        raise PromptError(f"{path}: expected {{\"objects\": [ ... ]}} with at least one object")
    prompts, names = [], set()
    for k, entry in enumerate(data["objects"]):
        where = f"{path}: objects[{k}]"
        if not isinstance(entry, dict):
            raise PromptError(f"{where} must be an object with name, view, points, labels")
        name, view = entry.get("name"), entry.get("view")
        if not isinstance(name, str) or not name or name in names:
            raise PromptError(f"{where}: 'name' must be a non-empty string, unique in the file (got {name!r})")
        names.add(name)
        if not isinstance(view, str):
            raise PromptError(f"{where} ({name}): 'view' must be a view name string (got {view!r})")
        points = _array(entry.get("points", []), (-1, 2), f"{where} ({name}): 'points' must be a list of [x, y] pairs")
        labels = _array(entry.get("labels", []), (-1,), f"{where} ({name}): 'labels' must be a list of 0/1 numbers")
        if len(labels) != len(points):
            raise PromptError(f"{where} ({name}): {len(points)} points but {len(labels)} labels")
        if not np.isin(labels, (0, 1)).all():
            raise PromptError(f"{where} ({name}): labels must be 1 (object) or 0 (background), got {labels.tolist()}")
        box = entry.get("box")
        if box is not None:
            box = _array(box, (4,), f"{where} ({name}): 'box' must be [x0, y0, x1, y1]")
        if len(points) == 0 and box is None:
            raise PromptError(f"{where} ({name}): no prompt: give points or a box")
        choice = entry.get("mask_choice")
        if choice is not None and choice not in (0, 1, 2):
            raise PromptError(f"{where} ({name}): 'mask_choice' must be 0, 1 or 2 (got {choice!r})")
        if cameras is not None:
            _check_against(cameras, where, name, view, points)
        prompts.append(ObjectPrompt(name, view, points, labels.astype(np.int64), box, choice))
    return prompts


def _array(value, shape: tuple[int, ...], problem: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise PromptError(problem) from None
    if array.size == 0 and shape[0] == -1:
        return array.reshape(0, *shape[1:])
    if array.ndim != len(shape) or any(s not in (-1, a) for s, a in zip(shape, array.shape)):
        raise PromptError(f"{problem} (got shape {list(array.shape)})")
    return array




def _check_against(cameras: Cameras, where: str, name: str, view: str, points: np.ndarray) -> None:
    try:
        i = cameras.index(view)
    except PromptError as exc:
        raise PromptError(f"{where} ({name}): {exc}") from None
    width, height = int(cameras.width[i]), int(cameras.height[i])
    outside = (points[:, 0] < 0) | (points[:, 0] >= width) | (points[:, 1] < 0) | (points[:, 1] >= height)
    if outside.any():
        x, y = points[np.argmax(outside)]
        raise PromptError(f"{where} ({name}): click ({x:g}, {y:g}) is outside the {width}x{height} image of view {view}")
