"""Cancel the running job, or stop the worker process to give its memory (GPU memory too) back."""

import bpy

from . import worker_session


class SA3D_OT_cancel_job(bpy.types.Operator):
    """Stop the running SA3D job at its next progress step"""

    bl_idname = "sa3d.cancel_job"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return worker_session.is_busy()

    def execute(self, context):
        worker_session.request_cancel()
        return {"FINISHED"}


class SA3D_OT_release_worker(bpy.types.Operator):
    """Stop the worker process and free its memory; the next step starts a new one (the field is reloaded)"""

    bl_idname = "sa3d.release_worker"
    bl_label = "Release Worker"

    @classmethod
    def poll(cls, context):
        return not worker_session.is_busy()

    def execute(self, context):
        worker_session.release()
        self.report({"INFO"}, "SA3D worker stopped")
        return {"FINISHED"}
