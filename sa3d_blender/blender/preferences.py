"""Add-on preferences: which Python runs the torch worker (empty = automatic, see default_worker_python), on which
device, with which SAM model."""

import bpy

from .addon_id import ADDON_ID
from .op_setup_worker import current_task, worker_venv_folder
from .worker_session import WorkerSettings, default_worker_python

DEVICES = [
    ("auto", "Auto", "CUDA if present, then Apple MPS, else CPU"),
    ("cuda", "CUDA", "NVIDIA GPU"),
    ("mps", "MPS", "Apple Silicon GPU"),
    ("cpu", "CPU", "Slow but works everywhere"),
]
SEGMENTERS = [
    ("mobile_sam", "MobileSAM", "Small and fast (TinyViT encoder); good default on CPU"),
    ("vit_b", "SAM ViT-B", "Segment Anything base model (needs its checkpoint)"),
    ("vit_l", "SAM ViT-L", "Segment Anything large model (needs its checkpoint)"),
    ("vit_h", "SAM ViT-H", "Segment Anything huge model (~7 GB of GPU memory)"),
]


class SA3DPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    worker_python: bpy.props.StringProperty(
        name="Worker Python",
        description="Python interpreter with torch and sa3d_blender's dependencies; empty = automatic (the one Set Up "
                    "Worker made, else the project venv)",
        subtype="FILE_PATH",
    )
    device: bpy.props.EnumProperty(name="Device", items=DEVICES, default="auto")
    segmenter: bpy.props.EnumProperty(name="SAM model", items=SEGMENTERS, default="mobile_sam")
    sam_checkpoint: bpy.props.StringProperty(
        name="SAM checkpoint",
        description="Weights file of the SAM model; empty = the project's MobileSAM weights",
        subtype="FILE_PATH",
    )

    def draw(self, context):
        layout = self.layout
        row = layout.row()
        row.operator("sa3d.setup_worker", icon="CONSOLE")
        task = current_task()
        if task is not None and task.running:
            row.operator("sa3d.cancel_setup", icon="CANCEL")
            layout.progress(factor=task.fraction, text=task.message)
        elif task is not None:
            layout.label(text=task.message, icon="ERROR" if task.error else "CHECKMARK")
        layout.prop(self, "worker_python")
        layout.label(text=f"Automatic: {default_worker_python(worker_venv_folder())}", icon="INFO")
        layout.prop(self, "device")
        layout.prop(self, "segmenter")
        layout.prop(self, "sam_checkpoint")


def worker_settings(context) -> WorkerSettings:
    """The preferences as plain values; defaults when the package runs without being enabled as an add-on."""
    addon = context.preferences.addons.get(ADDON_ID)
    prefs = addon.preferences if addon else None
    if prefs is None:
        return WorkerSettings(python=default_worker_python())
    automatic = default_worker_python(worker_venv_folder())
    return WorkerSettings(
        python=bpy.path.abspath(prefs.worker_python) if prefs.worker_python else automatic,
        device=prefs.device,
        segmenter=prefs.segmenter,
        sam_checkpoint=bpy.path.abspath(prefs.sam_checkpoint) if prefs.sam_checkpoint else None,
    )
