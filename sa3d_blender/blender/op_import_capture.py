"""File > Import > NeRF capture (SA3D), and drag-and-drop of a capture file onto the 3D View: the chosen file becomes
the panel's dataset and its cameras are imported (through the worker, like the panel's Import Dataset Cameras)."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy_extras.io_utils import ImportHelper

# transforms.json (NeRF, instant-ngp, nerfstudio), LLFF poses_bounds.npy, any file of a COLMAP sparse model
CAPTURE_FILES = ".json;.npy;.bin;.txt"
COLMAP_MODEL_STEMS = ("cameras", "images", "points3D")


def dataset_of(path: Path) -> Path:
    """The dataset path the worker reads for a chosen file: the file itself, or the COLMAP model folder it is in."""
    if path.suffix in (".bin", ".txt") and path.stem in COLMAP_MODEL_STEMS:
        return path.parent
    return path


class SA3D_OT_import_capture(bpy.types.Operator, ImportHelper):
    """Import a NeRF capture's cameras (transforms.json, poses_bounds.npy or a COLMAP model file)"""

    bl_idname = "sa3d.import_capture"
    bl_label = "Import NeRF Capture (SA3D)"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: bpy.props.StringProperty(default="*.json;*.npy;cameras.bin;cameras.txt;images.bin;images.txt",
                                          options={"HIDDEN"})
    with_images: bpy.props.BoolProperty(name="Background images", default=True)

    @classmethod
    def poll(cls, context):
        return bpy.ops.sa3d.import_scene.poll()

    def execute(self, context):
        path = Path(self.filepath)
        if not path.is_file():
            self.report({"ERROR"}, f"Import failed: {path}: file not found")
            return {"CANCELLED"}
        context.scene.sa3d.dataset_path = str(dataset_of(path))
        mode = "EXEC_DEFAULT" if bpy.app.background else "INVOKE_DEFAULT"
        return bpy.ops.sa3d.import_scene(mode, with_images=self.with_images)

    def invoke(self, context, event):
        if self.filepath:  # dropped on the 3D View: no file browser
            return self.execute(context)
        return ImportHelper.invoke(self, context, event)


class SA3D_FH_capture(bpy.types.FileHandler):
    bl_idname = "SA3D_FH_capture"
    bl_label = "NeRF capture (SA3D)"
    bl_import_operator = "sa3d.import_capture"
    bl_file_extensions = CAPTURE_FILES

    @classmethod
    def poll_drop(cls, context):
        return context.area is not None and context.area.type == "VIEW_3D"


def menu_import(self, context):
    self.layout.operator(SA3D_OT_import_capture.bl_idname, text="NeRF capture (SA3D)")
