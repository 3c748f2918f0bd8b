"""Check an object's 3D mask from other dataset cameras before meshing: the worker renders the mask in the chosen view
and the click overlay draws it over that camera's frame."""

import bpy
import numpy as np

from . import overlay
from .camera_import import VIEW_TAG, use_camera
from .jobs import WorkerJobOperator
from .op_extract import ensure_segmented
from .op_prompt import prompt_camera

MASK_VALUE = 0.5  # the worker's mask is 1 inside the object and 0 outside


class SA3D_OT_preview_mask(WorkerJobOperator, bpy.types.Operator):
    """Show the active object's 3D mask from the selected dataset camera (select another camera to look from there)"""

    bl_idname = "sa3d.preview_mask"
    bl_label = "Preview Mask"

    @classmethod
    def poll(cls, context):
        props = context.scene.sa3d
        return (super().poll(context) and 0 <= props.active_object < len(props.objects)
                and prompt_camera(context) is not None)

    def job_steps(self, context):
        scene = context.scene
        item = scene.sa3d.objects[scene.sa3d.active_object]
        name, camera_name = item.name, prompt_camera(context).name
        yield from ensure_segmented(context, item)
        rendered = yield "render_mask", {"name": name, "view": scene.objects[camera_name][VIEW_TAG]}
        mask = np.load(rendered["path"]) > MASK_VALUE
        use_camera(scene, scene.objects[camera_name])
        overlay.show(camera_name)
        overlay.set_mask(mask)
        return f"{name} seen from {camera_name}: {mask.mean():.1%} of the image"


class SA3D_OT_hide_overlay(bpy.types.Operator):
    """Stop drawing the mask preview over the camera view"""

    bl_idname = "sa3d.hide_overlay"
    bl_label = "Hide Preview"

    @classmethod
    def poll(cls, context):
        return overlay.is_shown()

    def execute(self, context):
        overlay.hide()
        for area in context.screen.areas if context.screen else ():
            area.tag_redraw()
        return {"FINISHED"}
