"""Register and unregister everything the add-on adds to Blender, and leave nothing behind on unregister
(draw handler, worker process, CLI command)."""

import bpy

from . import batch, overlay, panel, preferences, properties, worker_session
from .op_extract import SA3D_OT_extract
from .op_import_capture import SA3D_FH_capture, SA3D_OT_import_capture, menu_import
from .op_import_scene import SA3D_OT_import_scene
from .op_preview_mask import SA3D_OT_hide_overlay, SA3D_OT_preview_mask
from .op_prompt import SA3D_OT_click_prompt
from .op_segment import SA3D_OT_segment
from .op_setup_worker import SA3D_OT_cancel_setup, SA3D_OT_setup_worker
from .op_train import SA3D_OT_load_field, SA3D_OT_train
from .op_worker import SA3D_OT_cancel_job, SA3D_OT_release_worker

CLI_COMMAND = "sa3d"

# property groups first: the scene pointer and the panel refer to them
CLASSES = (
    *properties.CLASSES,
    SA3D_OT_setup_worker,
    SA3D_OT_cancel_setup,
    preferences.SA3DPreferences,
    SA3D_OT_import_scene,
    SA3D_OT_import_capture,
    SA3D_FH_capture,
    SA3D_OT_train,
    SA3D_OT_load_field,
    SA3D_OT_click_prompt,
    SA3D_OT_segment,
    SA3D_OT_extract,
    SA3D_OT_preview_mask,
    SA3D_OT_hide_overlay,
    SA3D_OT_cancel_job,
    SA3D_OT_release_worker,
    panel.SA3D_UL_objects,
    panel.SA3D_PT_main,
)

_cli_handle = None


@bpy.app.handlers.persistent
def _on_file_loaded(_filepath) -> None:
    """Jobs, busy state and the click overlay belong to the file that was open; a new file starts clean."""
    overlay.hide()
    worker_session.forget_file()


@bpy.app.handlers.persistent
def _on_undo(_scene, _data=None) -> None:
    worker_session.scene_undone()


UNDO_HANDLERS = (bpy.app.handlers.undo_post, bpy.app.handlers.redo_post)


def register() -> None:
    global _cli_handle
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    properties.register_properties()
    bpy.app.handlers.load_post.append(_on_file_loaded)
    for handlers in UNDO_HANDLERS:
        handlers.append(_on_undo)
    bpy.types.TOPBAR_MT_file_import.append(menu_import)
    if hasattr(bpy.utils, "register_cli_command"):  # Blender >= 4.2
        _cli_handle = bpy.utils.register_cli_command(CLI_COMMAND, batch.cli_command)


def unregister() -> None:
    global _cli_handle
    if _cli_handle is not None:
        bpy.utils.unregister_cli_command(_cli_handle)
        _cli_handle = None
    bpy.types.TOPBAR_MT_file_import.remove(menu_import)
    if _on_file_loaded in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_on_file_loaded)
    for handlers in UNDO_HANDLERS:
        if _on_undo in handlers:
            handlers.remove(_on_undo)
    overlay.hide()
    worker_session.release()
    properties.unregister_properties()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
