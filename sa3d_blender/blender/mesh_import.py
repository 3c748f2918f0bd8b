"""Extracted mesh (.npz: vertices, faces, colors, and when textured loop_uv + texture) -> a Blender mesh object under
"NeRF space", with its photo texture or its vertex colours.

Vertices are in dataset world coordinates, so the object sits at identity relative to the NeRF-space Empty.
Colours become a FLOAT_COLOR point attribute (linear, as Blender stores it); a textured mesh gets a UV map and a
material with the texture as an sRGB image (packed into the .blend), else a material that shows the colour attribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from ..core.errors import SA3DError
from .camera_import import remove_object

COLOR_ATTRIBUTE = "Col"
UV_MAP = "UVMap"
OBJECT_TAG = "sa3d_object"  # custom property on imported meshes: the SA3D object name


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    srgb = np.asarray(srgb, dtype=np.float32)
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4).astype(np.float32)


@dataclass
class MeshArrays:
    vertices: np.ndarray  # float32 [V,3]
    faces: np.ndarray  # int32 [F,3]
    rgba: np.ndarray  # float32 [V,4] linear
    loop_uv: np.ndarray | None = None  # float32 [F*3,2]
    texture: Path | None = None  # sRGB PNG


def read_mesh_npz(path: str | Path) -> MeshArrays:
    """The worker's .npz; SA3DError naming the file when it is not one."""
    path = Path(path)
    try:
        with np.load(path) as data:
            vertices = np.asarray(data["vertices"], dtype=np.float32).reshape(-1, 3)
            faces = np.asarray(data["faces"], dtype=np.int32).reshape(-1, 3)
            colors = np.asarray(data["colors"]) if "colors" in data else np.full((len(vertices), 4), 255, np.uint8)
            loop_uv = np.asarray(data["loop_uv"], dtype=np.float32).reshape(-1, 2) if "loop_uv" in data else None
            texture = Path(str(data["texture"])) if "texture" in data else None
    except (OSError, KeyError, ValueError) as error:
        raise SA3DError(f"{path}: not a mesh file from the worker ({error})") from None
    if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise SA3DError(f"{path}: face indices outside the {len(vertices)} vertices")
    if loop_uv is not None and len(loop_uv) != 3 * len(faces):
        raise SA3DError(f"{path}: {len(loop_uv)} uv corners for {len(faces)} triangles")
    if texture is not None and not texture.is_file():
        raise SA3DError(f"{path}: its texture {texture} is missing")
    rgba = colors.astype(np.float32).reshape(len(vertices), -1) / 255.0
    if rgba.shape[1] == 3:
        rgba = np.c_[rgba, np.ones(len(rgba), np.float32)]
    rgba[:, :3] = srgb_to_linear(rgba[:, :3])
    return MeshArrays(vertices, faces, rgba, loop_uv, texture)


def build_mesh(name: str, arrays: MeshArrays) -> bpy.types.Mesh:
    vertices, faces, rgba = arrays.vertices, arrays.faces, arrays.rgba
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", vertices.ravel())
    mesh.loops.add(3 * len(faces))
    mesh.loops.foreach_set("vertex_index", faces.ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, 3 * len(faces), 3, dtype=np.int32))
    colors = mesh.color_attributes.new(COLOR_ATTRIBUTE, "FLOAT_COLOR", "POINT")
    colors.data.foreach_set("color", rgba.ravel())
    mesh.color_attributes.active_color = colors
    mesh.color_attributes.render_color_index = mesh.color_attributes.active_color_index
    if arrays.loop_uv is not None:
        mesh.uv_layers.new(name=UV_MAP).data.foreach_set("uv", arrays.loop_uv.ravel())
    mesh.update()
    if mesh.validate():
        # validate() fixed something (e.g. degenerate faces): worth knowing, not worth failing
        mesh.update()
    return mesh


def vertex_color_material(name: str = "SA3D vertex colours") -> bpy.types.Material:
    """One shared material whose base colour is the mesh's colour attribute."""
    material = bpy.data.materials.get(name)
    if material is None:
        material, attribute = _base_color_from(name, "ShaderNodeVertexColor")
        attribute.layer_name = COLOR_ATTRIBUTE
    return material


def texture_material(name: str, texture: Path) -> bpy.types.Material:
    """A material of its own whose base colour is the photo texture (an sRGB image, packed so the .blend keeps it)."""
    image = bpy.data.images.load(str(texture), check_existing=False)
    image.name = f"{name} texture"
    image.colorspace_settings.name = "sRGB"
    image.pack()
    material, node = _base_color_from(f"SA3D {name}", "ShaderNodeTexImage")
    node.image = image
    return material


def _base_color_from(name: str, node_type: str) -> tuple[bpy.types.Material, bpy.types.Node]:
    """A new node material whose Principled BSDF takes its base colour from a new node of `node_type`."""
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    nodes = material.node_tree.nodes
    shader = next(node for node in nodes if node.type == "BSDF_PRINCIPLED")
    node = nodes.new(node_type)
    node.location = (shader.location.x - 350, shader.location.y)
    material.node_tree.links.new(node.outputs["Color"], shader.inputs["Base Color"])
    return material, node


def _remove_unused(materials: list[bpy.types.Material]) -> None:
    """Delete the SA3D materials nothing uses any more, and then their texture images nothing else uses (a material
    the user put on the object stays)."""
    for material in materials:
        if material.users or not material.name.startswith("SA3D "):
            continue
        nodes = material.node_tree.nodes if material.node_tree is not None else []
        images = [node.image for node in nodes if node.bl_idname == "ShaderNodeTexImage" and node.image is not None]
        bpy.data.materials.remove(material)
        for image in images:
            if not image.users:
                bpy.data.images.remove(image)


def import_mesh(
    scene: bpy.types.Scene, name: str, npz_path: str | Path, parent: bpy.types.Object | None
) -> bpy.types.Object:
    """Create the mesh object `name` (replacing the mesh of an earlier import of the same SA3D object), with its
    origin at the centre of its base (the lowest point along the capture's up axis, +Z of NeRF space), so that it
    can be moved, scaled and set down elsewhere like any asset; the vertices stay where the capture put them."""
    arrays = read_mesh_npz(npz_path)
    origin = base_centre(arrays.vertices)
    arrays.vertices = arrays.vertices - origin
    old = next((obj for obj in scene.objects if obj.get(OBJECT_TAG) == name), None)
    if old is not None:  # first, so the new object, mesh, material and texture get the plain names
        materials = [m for m in old.data.materials if m is not None]
        remove_object(old)
        _remove_unused(materials)
    mesh = build_mesh(name, arrays)
    textured = arrays.texture is not None and arrays.loop_uv is not None
    mesh.materials.append(texture_material(name, arrays.texture) if textured else vertex_color_material())
    obj = bpy.data.objects.new(name, mesh)
    scene.collection.objects.link(obj)
    obj[OBJECT_TAG] = name
    obj.location = origin.tolist()
    if parent is not None:
        obj.parent = parent
        obj.matrix_parent_inverse.identity()
    return obj


def base_centre(vertices: np.ndarray) -> np.ndarray:
    """The middle of the vertices' box in x and y, at their lowest z; zeros for an empty mesh."""
    if not len(vertices):
        return np.zeros(3, dtype=np.float32)
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    return np.array([(low[0] + high[0]) / 2, (low[1] + high[1]) / 2, low[2]], dtype=np.float32)
