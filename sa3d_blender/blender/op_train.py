"""Train a radiance field on the dataset, or load a trained one, in the worker; then prepare it for segmentation."""

import bpy

from . import workflow, worker_session
from .jobs import WorkerJobOperator
from .preferences import worker_settings


def prepared_key(context) -> tuple:
    props = context.scene.sa3d
    return workflow.dataset_path(props), workflow.field_path(props), worker_settings(context)


class SA3D_OT_train(WorkerJobOperator, bpy.types.Operator):
    """Train the radiance field of the dataset (progress below, Esc or Cancel to stop)"""

    bl_idname = "sa3d.train"
    bl_label = "Train Field"

    def job_steps(self, context):
        props = context.scene.sa3d
        key = prepared_key(context)
        message = yield from workflow.train_steps(key[0], key[1], props.train_seconds, key[2])
        worker_session.mark_prepared(key)
        return message


class SA3D_OT_load_field(WorkerJobOperator, bpy.types.Operator):
    """Load a trained field checkpoint for the dataset"""

    bl_idname = "sa3d.load_field"
    bl_label = "Load Field"

    def job_steps(self, context):
        key = prepared_key(context)
        message = yield from workflow.load_field_steps(*key)
        worker_session.mark_prepared(key)
        return message


def ensure_prepared(context):
    """Steps that load and prepare the field unless the running worker already holds it (e.g. after a restart)."""
    key = prepared_key(context)
    if not worker_session.is_prepared(key):
        yield from workflow.load_field_steps(*key)
        worker_session.mark_prepared(key)
