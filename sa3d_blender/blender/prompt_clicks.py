"""The click prompt's state machine, free of bpy so it can be tested with plain event objects.

LMB adds a positive click, Shift+LMB a negative one, Ctrl+Z removes the last, Enter segments, Esc/RMB cancels;
view navigation passes through to Blender.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable

STATUS_HELP = "LMB: add object point  •  Shift+LMB: background point  •  Ctrl+Z: undo click  •  Enter: segment  •  Esc: cancel"

# Events Blender must still see so the user can orbit/zoom/pan while prompting
NAVIGATION_EVENTS = {
    "MIDDLEMOUSE", "WHEELUPMOUSE", "WHEELDOWNMOUSE", "WHEELINMOUSE", "WHEELOUTMOUSE", "MOUSEMOVE", "INBETWEEN_MOUSEMOVE",
    "TRACKPADPAN", "TRACKPADZOOM", "MOUSEROTATE", "MOUSESMARTZOOM",
    "NDOF_MOTION", "NDOF_BUTTON_MENU", "NDOF_BUTTON_FIT",
}


@dataclass
class PromptEvent:
    """A Blender event with its mouse position made relative to the 3D view's main region."""

    type: str
    value: str
    shift: bool
    ctrl: bool
    mouse_region_x: int
    mouse_region_y: int


class PromptAction(enum.Enum):
    IGNORED = "ignored"  # swallowed, nothing changed
    PASS_THROUGH = "pass_through"  # Blender handles it (navigation)
    CHANGED = "changed"  # the clicks changed: ask SAM for new candidate masks
    SEGMENT = "segment"  # finish and segment in 3D with the clicks
    CANCEL = "cancel"  # finish without segmenting


@dataclass
class PromptClicks:
    """Clicks in dataset-image pixels (x right, y down, origin top-left corner), label 1 = object, 0 = background."""

    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)

    @property
    def has_positive(self) -> bool:
        return 1 in self.labels

    def add(self, x: float, y: float, positive: bool) -> None:
        self.points.append((float(x), float(y)))
        self.labels.append(1 if positive else 0)

    def remove_last(self) -> bool:
        if not self.points:
            return False
        self.points.pop()
        self.labels.pop()
        return True


PixelOf = Callable[[float, float], "tuple[float, float] | None"]


def handle_prompt_event(clicks: PromptClicks, event: PromptEvent, pixel_of: PixelOf) -> PromptAction:
    """Apply one event to `clicks`. `pixel_of(region_x, region_y)` gives the image pixel under the mouse,
    or None when the mouse is outside the camera image (such clicks are ignored, not clamped)."""
    if event.type in NAVIGATION_EVENTS:
        return PromptAction.PASS_THROUGH
    if event.value != "PRESS":
        return PromptAction.IGNORED
    if event.type == "LEFTMOUSE" and not event.ctrl:
        pixel = pixel_of(event.mouse_region_x, event.mouse_region_y)
        if pixel is None:
            return PromptAction.IGNORED
        clicks.add(*pixel, positive=not event.shift)
        return PromptAction.CHANGED
    if event.type == "Z" and event.ctrl:
        return PromptAction.CHANGED if clicks.remove_last() else PromptAction.IGNORED
    if event.type in ("RET", "NUMPAD_ENTER"):
        return PromptAction.SEGMENT if clicks.has_positive else PromptAction.IGNORED
    if event.type in ("ESC", "RIGHTMOUSE"):
        return PromptAction.CANCEL
    return PromptAction.IGNORED
