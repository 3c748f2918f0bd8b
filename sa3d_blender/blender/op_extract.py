"""Extract the active segmented object's mesh again and re-import it; segments it again first when the worker
was restarted since (a new worker process holds no 3D masks)."""

import json

import bpy

from . import workflow, worker_session
from .jobs import WorkerJobOperator
from .op_train import ensure_prepared


def ensure_segmented(context, item):
    """Steps that give the worker the object's 3D mask: prepare the field, segment again from the stored clicks unless
    this worker process already holds the mask."""
    yield from ensure_prepared(context)
    if not worker_session.is_segmented(item.name):
        prompt = {"view": item.view, **json.loads(item.prompt_json)}
        yield workflow.segment_request(item.name, prompt, prompt.get("mask_choice"))
        worker_session.mark_segmented(item.name)


class SA3D_OT_extract(WorkerJobOperator, bpy.types.Operator):
    """Extract the active object's mesh from the field and import it"""

    bl_idname = "sa3d.extract"
    bl_label = "Extract Mesh"
    bl_options = {"REGISTER", "UNDO"}  # the object and its panel entry are scene data: undone together

    @classmethod
    def poll(cls, context):
        props = context.scene.sa3d
        return super().poll(context) and 0 <= props.active_object < len(props.objects)

    def job_steps(self, context):
        props = context.scene.sa3d
        item = props.objects[props.active_object]
        out_path = workflow.mesh_path(props, item.name)
        yield from ensure_segmented(context, item)
        obj = yield from workflow.extract_and_import_steps(context.scene, item.name, out_path,
                                                           {"texture": props.photo_texture})
        item.mesh_path = out_path
        return f"{item.name}: mesh of {len(obj.data.vertices)} vertices, {len(obj.data.polygons)} faces -> {out_path}"
