"""Click prompt: look through a dataset camera, click the object (and background), see SAM's mask after each click.

The event logic is prompt_clicks.handle_prompt_event; this operator feeds it Blender events, asks the worker for
candidate masks (one request at a time; clicks made meanwhile are sent when it returns) and draws the overlay.
"""

import json

import bpy
import numpy as np

from ..core.errors import SA3DError
from . import overlay, worker_session
from .camera_import import VIEW_TAG, use_camera
from .click_mapping import inside_image, region_to_pixel
from .op_train import prepared_key
from .preferences import worker_settings
from .prompt_clicks import STATUS_HELP, PromptAction, PromptClicks, PromptEvent, handle_prompt_event
from .viewport import camera_frame_in_region, image_size, window_region

POLL_SECONDS = 0.1


def prompt_camera(context):
    """The dataset camera to click in: the active object if it is one, else the scene camera if it is one."""
    for obj in (context.active_object, context.scene.camera):
        if obj is not None and obj.type == "CAMERA" and VIEW_TAG in obj:
            return obj
    return None


class SA3D_OT_click_prompt(bpy.types.Operator):
    """Click the object to segment in a dataset camera's view (LMB object, Shift+LMB background, Enter to segment)"""

    bl_idname = "sa3d.click_prompt"
    bl_label = "Click to Prompt"

    def invoke(self, context, event):
        if context.area is None or context.area.type != "VIEW_3D":
            self.report({"ERROR"}, "Click to Prompt runs in a 3D Viewport")
            return {"CANCELLED"}
        camera = prompt_camera(context)
        if camera is None:
            self.report({"ERROR"}, "Select a dataset camera (Import the dataset cameras first)")
            return {"CANCELLED"}
        try:
            ready = worker_session.is_prepared(prepared_key(context))
        except SA3DError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if not ready:
            self.report({"ERROR"}, "Train or load the field first: SAM needs the prepared views")
            return {"CANCELLED"}
        self.camera_name = camera.name
        self.view = camera[VIEW_TAG]
        self.clicks = PromptClicks()
        self.client = worker_session.client(worker_settings(context))
        self.job = None
        self.stale = False  # the clicks changed while a candidates request was running
        self.region = window_region(context.area)
        self.rv3d = context.area.spaces.active.region_3d
        use_camera(context.scene, camera)
        self.rv3d.view_perspective = "CAMERA"
        worker_session.set_busy(True)
        overlay.show(camera.name)
        context.workspace.status_text_set(STATUS_HELP)
        wm = context.window_manager
        self.timer = wm.event_timer_add(POLL_SECONDS, window=context.window)
        wm.modal_handler_add(self)
        context.area.tag_redraw()
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "TIMER":
            return self._poll_candidates(context) if event.timer is self.timer else {"PASS_THROUGH"}
        x, y = event.mouse_x - self.region.x, event.mouse_y - self.region.y
        over_view = 0 <= x < self.region.width and 0 <= y < self.region.height
        if event.type in ("LEFTMOUSE", "RIGHTMOUSE") and not over_view:
            return {"PASS_THROUGH"}  # sidebar buttons, header menus
        action = handle_prompt_event(
            self.clicks, PromptEvent(event.type, event.value, event.shift, event.ctrl, x, y), self._pixel_of(context)
        )
        if action is PromptAction.PASS_THROUGH:
            return {"PASS_THROUGH"}
        if action is PromptAction.CHANGED:
            self._request_candidates()
        elif action is PromptAction.SEGMENT:
            props = context.scene.sa3d
            props.prompt_view = self.view
            props.prompt_json = json.dumps({"points": self.clicks.points, "labels": self.clicks.labels})
            self._end(context)
            bpy.ops.sa3d.segment("INVOKE_DEFAULT")
            return {"FINISHED"}
        elif action is PromptAction.CANCEL:
            self._end(context)
            return {"CANCELLED"}
        overlay.set_clicks(self.clicks.points, self.clicks.labels)
        context.area.tag_redraw()
        return {"RUNNING_MODAL"}

    def _pixel_of(self, context):
        camera = context.scene.objects[self.camera_name]
        width, height = image_size(camera)

        def pixel_of(x, y):
            corners = camera_frame_in_region(context.scene, camera, self.region, self.rv3d)
            if corners is None:
                return None
            pixel = region_to_pixel(corners, width, height, [(x, y)])
            return tuple(pixel[0]) if inside_image(pixel, width, height)[0] else None

        return pixel_of

    def _request_candidates(self) -> None:
        if self.job is not None:
            self.stale = True
            return
        if not self.clicks.points:
            overlay.set_mask(None)
            return
        self.job = self.client.submit(
            "candidates", view=self.view, points=self.clicks.points, labels=self.clicks.labels
        )
        self.stale = False

    def _poll_candidates(self, context):
        if self.job is None:
            return {"PASS_THROUGH"}
        self.client.poll()
        if self.job.state == "running":
            return {"PASS_THROUGH"}
        job, self.job = self.job, None
        if job.error is not None:
            self.report({"ERROR"}, f"SAM failed: {job.error}")
            if not self.client.alive:
                self._end(context)
                return {"CANCELLED"}
        else:
            overlay.set_mask(np.load(job.result["chosen"]).astype(bool))  # the mask Segment will start from
        if self.stale:
            self._request_candidates()
        context.area.tag_redraw()
        return {"PASS_THROUGH"}

    def cancel(self, context):
        """Blender ends the operator (another file loaded, window closed): no timer, overlay or job left behind."""
        self._end(context)

    def _end(self, context) -> None:
        context.window_manager.event_timer_remove(self.timer)
        if self.job is not None:
            self.client.cancel(self.job)
        overlay.hide()
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        worker_session.set_busy(False)
        if context.area is not None:
            context.area.tag_redraw()
