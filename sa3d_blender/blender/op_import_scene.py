"""Import a capture's cameras (with their images as backgrounds) into the scene; no worker needed, the dataset reader is numpy-only."""

import bpy

from ..core.datasets import load_dataset
from ..core.errors import SA3DError
from .camera_import import import_cameras
from .workflow import dataset_path


class SA3D_OT_import_scene(bpy.types.Operator):
    """Import the dataset's cameras under a "NeRF space" Empty"""

    bl_idname = "sa3d.import_scene"
    bl_label = "Import Dataset Cameras"
    bl_options = {"REGISTER", "UNDO"}

    with_images: bpy.props.BoolProperty(name="Background images", default=True)

    def execute(self, context):
        props = context.scene.sa3d
        try:
            path = dataset_path(props)
            dataset = load_dataset(path)
        except SA3DError as error:
            self.report({"ERROR"}, f"Import failed: {error}")
            return {"CANCELLED"}
        _, cameras = import_cameras(context.scene, dataset.cameras, dataset.bbox, path, self.with_images)
        props.prompt_view = dataset.cameras.names[0]
        self.report({"INFO"}, f"Imported {len(cameras)} cameras from {dataset.root}")
        return {"FINISHED"}
