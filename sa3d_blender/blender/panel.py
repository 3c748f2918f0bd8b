"""3D View ▸ Sidebar ▸ SA3D: import the capture, train or load the field, click objects, segment, extract."""

import bpy

from . import worker_session
from .camera_import import find_nerf_space


class SA3D_UL_objects(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_property, index=0, flt_flag=0):
        layout.label(text=item.name, icon="MESH_DATA" if item.mesh_path else "OBJECT_DATA")
        layout.label(text=item.view)


class SA3D_PT_main(bpy.types.Panel):
    bl_label = "SA3D"
    bl_idname = "SA3D_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "SA3D"

    def draw(self, context):
        layout = self.layout
        props = context.scene.sa3d

        box = layout.box()
        box.label(text="1. Capture", icon="CAMERA_DATA")
        box.prop(props, "dataset_path")
        box.operator("sa3d.import_scene", icon="IMPORT")
        space = find_nerf_space(context.scene)
        if space is not None:
            box.label(text=f"NeRF space: {space.name}", icon="EMPTY_AXIS")

        box = layout.box()
        box.label(text="2. Radiance field", icon="VOLUME_DATA")
        box.prop(props, "field_path")
        box.prop(props, "train_seconds")
        row = box.row(align=True)
        row.operator("sa3d.train", icon="PLAY")
        row.operator("sa3d.load_field", icon="FILE_FOLDER")

        box = layout.box()
        box.label(text="3. Objects", icon="RESTRICT_SELECT_OFF")
        box.prop(props, "object_name")
        box.operator("sa3d.click_prompt", icon="MOUSE_LMB")
        if props.prompt_json:
            prompt = props.pending_prompt()
            box.label(text=f"{len(prompt['points'])} clicks in view {props.prompt_view}")
        box.prop(props, "mask_choice")
        box.operator("sa3d.segment", icon="MOD_MASK")
        box.template_list("SA3D_UL_objects", "", props, "objects", props, "active_object", rows=3)
        box.prop(props, "mesh_folder")
        box.prop(props, "photo_texture")
        row = box.row(align=True)
        row.operator("sa3d.preview_mask", icon="HIDE_OFF")
        row.operator("sa3d.hide_overlay", text="", icon="HIDE_ON")
        box.operator("sa3d.extract", icon="MESH_ICOSPHERE")

        if worker_session.is_busy():
            row = layout.row(align=True)
            row.progress(factor=props.progress, text=props.progress_text or "working…")
            row.operator("sa3d.cancel_job", text="", icon="CANCEL")
        elif props.progress_text:
            layout.label(text=props.progress_text)
        layout.label(text=worker_session.status_text(), icon="SYSTEM")
        layout.operator("sa3d.release_worker", icon="X")
