"""Preferences > Set Up Worker: make the worker's Python environment (venv + torch, SAM... + MobileSAM weights) in the
extension's user folder, in a background thread so Blender's UI never freezes; Esc or Cancel stops it."""

from __future__ import annotations

import shlex
import threading
from pathlib import Path

import bpy

from ..core.cache_folder import mobile_sam_weights
from ..core.errors import Cancelled, SA3DError
from ..worker import environment
from .addon_id import ADDON_ID

POLL_SECONDS = 0.2


def worker_venv_folder() -> Path | None:
    """Where Set Up Worker makes the venv: the extension's user folder (None when not installed as an extension)."""
    if not ADDON_ID.startswith("bl_ext."):
        return None
    return Path(bpy.utils.extension_path_user(ADDON_ID, path="", create=True)) / "worker-venv"


class SetupTask:
    """One set-up run: its progress and outcome, read by the preferences' draw and the operator's timer."""

    def __init__(self, venv: Path, requirements: list[str], pip_options: list[str], with_weights: bool):
        self.venv, self.requirements, self.pip_options, self.with_weights = venv, requirements, pip_options, with_weights
        self.fraction, self.message = 0.0, "starting"
        self.error: SA3DError | None = None
        self.python: Path | None = None
        self.cancel_requested = False
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """The whole set-up in this thread; outcome in python / error."""
        try:
            self.python = environment.create_venv(self.venv, self.requirements, self._progress,
                                                  lambda: self.cancel_requested, self.pip_options)
            if self.with_weights:
                environment.fetch_weights(mobile_sam_weights(), self.python, self._progress, self.pip_options)
            self._progress(1.0, f"worker ready: {self.python}")
        except SA3DError as error:
            self.error = error
        except Exception as error:  # noqa: BLE001 - an OS error must end the task with a message, not kill the thread
            self.error = SA3DError(f"worker set-up failed: {error}")

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="sa3d-worker-setup", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _progress(self, fraction: float, message: str) -> None:
        self.fraction, self.message = fraction, message


_task: SetupTask | None = None  # the current or last run, shown in the preferences


def current_task() -> SetupTask | None:
    return _task


class SA3D_OT_setup_worker(bpy.types.Operator):
    """Make the worker's Python environment (torch, SAM, MobileSAM weights: several GB, needs the internet)"""

    bl_idname = "sa3d.setup_worker"
    bl_label = "Set Up Worker"

    # empty = the requirements shipped with the extension / its user folder; tests point these at local packages
    requirements: bpy.props.StringProperty(name="Requirements file", options={"HIDDEN", "SKIP_SAVE"})
    venv: bpy.props.StringProperty(name="Environment folder", options={"HIDDEN", "SKIP_SAVE"})
    pip_options: bpy.props.StringProperty(name="Extra pip options", options={"HIDDEN", "SKIP_SAVE"})
    with_weights: bpy.props.BoolProperty(name="Fetch MobileSAM weights", default=True, options={"HIDDEN", "SKIP_SAVE"})

    _timer = None

    @classmethod
    def poll(cls, context):
        return _task is None or not _task.running

    def _new_task(self) -> SetupTask:
        global _task
        venv = Path(self.venv) if self.venv else worker_venv_folder()
        if venv is None:
            raise SA3DError("no folder for the worker environment: install sa3d_blender as an extension, or run "
                            "scripts/setup_env.sh")
        requirements = environment.read_requirements(Path(self.requirements) if self.requirements else
                                                     environment.REQUIREMENTS)
        _task = SetupTask(venv, requirements, shlex.split(self.pip_options), self.with_weights)
        return _task

    def execute(self, context):
        """Blocking (background mode and scripts)."""
        try:
            task = self._new_task()
        except SA3DError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        task.run()
        return self._finish(context, task)

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        try:
            self._new_task().start()
        except SA3DError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self._timer = context.window_manager.event_timer_add(POLL_SECONDS, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            _task.cancel_requested = True
        if event.type != "TIMER" or event.timer is not self._timer:
            return {"PASS_THROUGH"}
        _redraw_preferences(context)
        if _task.running:
            return {"PASS_THROUGH"}
        self._remove_timer(context)
        return self._finish(context, _task)

    def cancel(self, context):
        """Blender ends the operator (file loaded, window closed): stop pip, leave nothing half-made."""
        if _task is not None:
            _task.cancel_requested = True
        self._remove_timer(context)

    def _remove_timer(self, context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None

    def _finish(self, context, task: SetupTask):
        _redraw_preferences(context)
        if task.error is not None:
            what = "cancelled" if isinstance(task.error, Cancelled) else f"failed: {task.error}"
            task.message = f"Set up {what}"
            self.report({"ERROR"}, task.message)
            return {"CANCELLED"}
        self.report({"INFO"}, task.message)
        return {"FINISHED"}


class SA3D_OT_cancel_setup(bpy.types.Operator):
    """Stop the worker set-up (the half-made environment is removed)"""

    bl_idname = "sa3d.cancel_setup"
    bl_label = "Cancel Set-Up"

    @classmethod
    def poll(cls, context):
        return _task is not None and _task.running

    def execute(self, context):
        _task.cancel_requested = True
        return {"FINISHED"}


def _redraw_preferences(context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()
