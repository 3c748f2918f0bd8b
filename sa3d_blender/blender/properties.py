"""Scene settings of the SA3D panel (scene.sa3d): dataset, field checkpoint, segmented objects, the pending click prompt
and the running job's progress."""

import json

import bpy


class SA3DObjectItem(bpy.types.PropertyGroup):
    """An object segmented in 3D: its name (also the mesh's) and the prompt that produced it."""

    # `name` comes from PropertyGroup
    view: bpy.props.StringProperty(name="View", description="Dataset view the clicks were made in")
    prompt_json: bpy.props.StringProperty(name="Prompt", description="Clicks as JSON: points, labels")
    mesh_path: bpy.props.StringProperty(name="Mesh file", subtype="FILE_PATH")


class SA3DSceneProperties(bpy.types.PropertyGroup):
    dataset_path: bpy.props.StringProperty(
        name="Dataset",
        description="Capture folder, transforms.json or poses_bounds.npy",
        subtype="FILE_PATH",
    )
    field_path: bpy.props.StringProperty(
        name="Field",
        description="Radiance-field checkpoint to train into or load; empty = a file in the add-on's user folder",
        subtype="FILE_PATH",
    )
    train_seconds: bpy.props.IntProperty(name="Training time (s)", default=240, min=5, soft_max=1800)
    mesh_folder: bpy.props.StringProperty(
        name="Mesh folder",
        description="Where extracted meshes are written (PLY); empty = the add-on's user folder",
        subtype="DIR_PATH",
    )

    photo_texture: bpy.props.BoolProperty(
        name="Photo texture",
        description="Texture meshes from the photos that see them (a UV map and an image); off: vertex colours only",
        default=True,
    )

    objects: bpy.props.CollectionProperty(type=SA3DObjectItem)
    active_object: bpy.props.IntProperty(name="Active object", default=0)

    object_name: bpy.props.StringProperty(name="Name", description="Name of the next object to segment", default="object")
    prompt_view: bpy.props.StringProperty(name="Prompt view", description="View of the pending clicks")
    prompt_json: bpy.props.StringProperty(name="Pending clicks", description="Pending clicks as JSON: points, labels")
    mask_choice: bpy.props.IntProperty(
        name="Mask",
        description="Which of SAM's 3 candidate masks to start from; -1 = the best-scored",
        default=-1,
        min=-1,
        max=2,
    )

    progress: bpy.props.FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR")
    progress_text: bpy.props.StringProperty(name="Status")

    def pending_prompt(self) -> dict:
        return json.loads(self.prompt_json) if self.prompt_json else {"points": [], "labels": []}


CLASSES = (SA3DObjectItem, SA3DSceneProperties)


def register_properties() -> None:
    bpy.types.Scene.sa3d = bpy.props.PointerProperty(type=SA3DSceneProperties)


def unregister_properties() -> None:
    del bpy.types.Scene.sa3d
