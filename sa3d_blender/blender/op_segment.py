"""Segment the pending click prompt in 3D (SA3D in the worker), then extract and import the object's mesh."""

import json

import bpy

from ..core.errors import PromptError
from . import workflow, worker_session
from .jobs import WorkerJobOperator
from .op_train import ensure_prepared


class SA3D_OT_segment(WorkerJobOperator, bpy.types.Operator):
    """Segment the clicked object in 3D and import its mesh"""

    bl_idname = "sa3d.segment"
    bl_label = "Segment"
    bl_options = {"REGISTER", "UNDO"}  # the object and its panel entry are scene data: undone together

    def job_steps(self, context):
        props = context.scene.sa3d
        name = props.object_name.strip()
        prompt = {"view": props.prompt_view, **props.pending_prompt()}
        if not name:
            raise PromptError("the object needs a name: type one in the SA3D panel")
        if 1 not in prompt["labels"]:
            raise PromptError("no object click yet: use Click to Prompt and left-click the object first")
        out_path = workflow.mesh_path(props, name)
        yield from ensure_prepared(context)
        segmented = yield workflow.segment_request(name, prompt, props.mask_choice)
        worker_session.mark_segmented(name)
        texture = {"texture": props.photo_texture}
        obj = yield from workflow.extract_and_import_steps(context.scene, name, out_path, texture)
        for container in segmented.get("containers", []):
            # the object lies in an earlier one (a ball in a tray): that one's mesh gives it up
            earlier = props.objects.get(container)
            if earlier is not None and earlier.mesh_path:
                yield from workflow.extract_and_import_steps(context.scene, container, earlier.mesh_path, texture)
        item = props.objects.get(name) or props.objects.add()
        item.name, item.view, item.mesh_path = name, prompt["view"], out_path
        item.prompt_json = json.dumps({"points": prompt["points"], "labels": prompt["labels"], "mask_choice": props.mask_choice})
        props.active_object = list(props.objects).index(item)
        props.prompt_json = ""
        statuses = list(segmented.get("view_status", {}).values())
        doubts = ", ".join(f"{statuses.count(s)} {s}" for s in ("reprompted", "fallback", "skipped") if statuses.count(s))
        return (f"{name}: segmented from {len(segmented['used_views'])} views{f' ({doubts})' if doubts else ''} "
                f"in {segmented['seconds']:.1f} s, mesh of {len(obj.data.vertices)} vertices")
