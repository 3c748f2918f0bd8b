"""Import a capture's cameras (with their images as backgrounds) into the scene; the worker reads the capture."""

import bpy

from . import workflow
from .jobs import WorkerJobOperator


class SA3D_OT_import_scene(WorkerJobOperator, bpy.types.Operator):
    """Import the dataset's cameras under a "NeRF space" Empty"""

    bl_idname = "sa3d.import_scene"
    bl_label = "Import Dataset Cameras"
    bl_options = {"REGISTER", "UNDO"}

    with_images: bpy.props.BoolProperty(name="Background images", default=True)

    def job_steps(self, context):
        path = workflow.dataset_path(context.scene.sa3d)
        return (yield from workflow.import_dataset_steps(context.scene, path, self.with_images))
