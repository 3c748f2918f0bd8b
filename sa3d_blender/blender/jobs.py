"""Run worker jobs from an operator: modal with a timer that polls the worker in the UI, blocking in background mode.

An operator lists its work as a generator `job_steps(context)` that yields (method, params) requests and receives each
result; it changes the Blender scene only after its last request succeeded, so a failure leaves the scene as it was.
The generator's return value is the message reported on success.
"""

from __future__ import annotations

import logging
from typing import Callable, Generator

import bpy

from ..core.errors import Cancelled, SA3DError
from ..worker.client import Job, WorkerClient
from . import worker_session
from .preferences import worker_settings

log = logging.getLogger(__name__)

Steps = Generator[tuple[str, dict], dict, "str | None"]
POLL_SECONDS = 0.1


def show_progress(context, fraction: float, text: str) -> None:
    props = context.scene.sa3d
    props.progress, props.progress_text = fraction, text
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def job_text(job: Job) -> str:
    return f"{job.stage}: {job.message}" if job.message else job.stage or job.method


def run_steps(client: WorkerClient, steps: Steps, progress: Callable[[Job], None] | None = None):
    """Run a step generator to the end, blocking; its return value. Worker failures raise (WorkerError ...)."""
    try:
        request = next(steps)
        while True:
            method, params = request
            request = steps.send(client.call(method, progress=progress, **params))
    except StopIteration as done:
        return done.value
    finally:
        steps.close()


def area_rect(area) -> tuple[int, int, int, int] | None:
    return None if area is None else (area.x, area.y, area.width, area.height)


def escape_is_ours(started_in: tuple[int, int, int, int] | None, event) -> bool:
    """Whether an Esc press cancels the job: only over the area it was started from (window coordinates)."""
    if started_in is None:
        return True
    x, y, width, height = started_in
    return x <= event.mouse_x < x + width and y <= event.mouse_y < y + height


class WorkerJobOperator:
    """Mixin for bpy.types.Operator subclasses that define job_steps(context)."""

    # plain attributes, not annotations: Blender would read annotations on an Operator as properties
    _steps = None
    _client = None
    _job = None
    _timer = None
    _started_in = None  # (x, y, width, height) of the area the job was started from, in window pixels
    _undo_generation = 0

    @classmethod
    def poll(cls, context):
        return not worker_session.is_busy()

    def job_steps(self, context) -> Steps:
        raise NotImplementedError

    # --- blocking (background mode, EXEC_DEFAULT, scripts) -----------------------------------------------------------
    def execute(self, context):
        worker_session.set_busy(True)
        try:
            steps = self.job_steps(context)
            client = worker_session.client(worker_settings(context))
            message = run_steps(client, steps, lambda job: self._blocking_progress(context, client, job))
        except SA3DError as error:
            return self._failed(context, error)
        finally:
            worker_session.set_busy(False)
        return self._succeeded(context, message)

    def _blocking_progress(self, context, client: WorkerClient, job: Job) -> None:
        if worker_session.cancel_requested():
            client.cancel(job)
        show_progress(context, job.fraction, job_text(job))

    # --- modal (interactive UI) -------------------------------------------------------------------------------------
    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        worker_session.set_busy(True)
        self._started_in = area_rect(context.area)
        self._undo_generation = worker_session.undo_generation()
        try:
            self._steps = self.job_steps(context)
            self._client = worker_session.client(worker_settings(context))
            self._submit(next(self._steps))
        except StopIteration as done:
            return self._succeeded(context, done.value)
        except SA3DError as error:
            return self._failed(context, error)
        wm = context.window_manager
        self._timer = wm.event_timer_add(POLL_SECONDS, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            if not escape_is_ours(self._started_in, event):
                return {"PASS_THROUGH"}  # Esc in another area belongs to what runs there
            self._client.cancel(self._job)
            return {"RUNNING_MODAL"}
        if event.type != "TIMER" or event.timer is not self._timer:
            return {"PASS_THROUGH"}
        if worker_session.cancel_requested():
            self._client.cancel(self._job)
        try:
            self._client.poll()
            job = self._job
            show_progress(context, job.fraction, job_text(job))
            if job.state == "running":
                return {"PASS_THROUGH"}
            if job.error is not None:
                raise job.error
            if worker_session.undo_generation() != self._undo_generation:
                # the steps hold scene data from before the undo: applying the result would write into freed data
                raise Cancelled("undone while it was running")
            self._submit(self._steps.send(job.result))
            return {"PASS_THROUGH"}
        except StopIteration as done:
            return self._succeeded(context, done.value)
        except SA3DError as error:
            return self._failed(context, error)

    def cancel(self, context):
        """Blender ends the operator (another file loaded, window closed): stop the job, free the panel."""
        if self._client is not None and self._job is not None:
            self._client.cancel(self._job)
        self._end(context)

    def _submit(self, request: tuple[str, dict]) -> None:
        method, params = request
        self._job = self._client.submit(method, **params)

    # --- endings ----------------------------------------------------------------------------------------------------
    def _end(self, context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        if self._steps is not None:
            self._steps.close()
            self._steps = None
        worker_session.set_busy(False)

    def _succeeded(self, context, message: str | None):
        self._end(context)
        show_progress(context, 0.0, message or "")
        if message:
            self.report({"INFO"}, message)
        return {"FINISHED"}

    def _failed(self, context, error: SA3DError):
        self._end(context)
        text = f"{self.bl_label} cancelled" if isinstance(error, Cancelled) else f"{self.bl_label} failed: {error}"
        log.info("%s", text)
        show_progress(context, 0.0, text)
        self.report({"ERROR"}, text)
        return {"CANCELLED"}
