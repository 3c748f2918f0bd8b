"""Blender data of generated scenes: matte objects (primitives, pybullet_data models), ground plane, world and sun."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import bmesh
import bpy
import numpy as np
from mathutils import Matrix

from ..core.errors import DatasetError

ROUGHNESS = 0.9
SPECULAR = 0.1  # low so that a view-independent (diffuse) radiance field can reproduce the images


@dataclass(frozen=True)
class ObjectSpec:
    """An object of a preset: `shape` is a primitive or a pybullet_data OBJ file, `size` its footprint in metres."""

    name: str
    shape: str
    size: float
    height: float | None = None  # primitives only; models keep their proportions
    color: tuple[float, float, float] | None = None  # None keeps the model's own texture
    z_up: bool = False  # the OBJ file is Z-up already (most pybullet_data models are Y-up)
    inside: str | None = None  # name of an object this one rests in (a ball in a tray): centred on it, not laid out
    lift: float = 0.0  # height of its base above the container's base (metres)


def _matte_material(name: str, color: tuple[float, float, float]) -> bpy.types.Material:
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    bsdf = material.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*color, 1.0)
    _make_matte(material)
    return material


def _make_matte(material: bpy.types.Material) -> None:
    for node in material.node_tree.nodes:
        if node.type == "BSDF_PRINCIPLED":
            node.inputs["Roughness"].default_value = ROUGHNESS
            node.inputs["Specular IOR Level"].default_value = SPECULAR
            node.inputs["Metallic"].default_value = 0.0


def _mesh_object(name: str, bm: bmesh.types.BMesh) -> bpy.types.Object:
    mesh = bpy.data.meshes.new(name)
    bm.to_mesh(mesh)
    bm.free()
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def _box(spec: ObjectSpec) -> bpy.types.Object:
    bm = bmesh.new()
    side = spec.size / math.sqrt(2.0)  # footprint = diagonal, so the yaw never changes the bounding radius
    height = spec.height or side
    matrix = Matrix.Diagonal((side, side, height, 1.0)) @ Matrix.Translation((0.0, 0.0, 0.5))
    bmesh.ops.create_cube(bm, size=1.0, matrix=matrix)
    obj = _mesh_object(spec.name, bm)
    bevel = obj.modifiers.new("bevel", "BEVEL")
    bevel.width = 0.08 * side
    bevel.segments = 3
    return obj


def _cone(spec: ObjectSpec, top_radius_fraction: float) -> bpy.types.Object:
    bm = bmesh.new()
    radius = spec.size / 2.0
    height = spec.height or spec.size
    bmesh.ops.create_cone(
        bm,
        cap_ends=True,
        segments=64,
        radius1=radius,
        radius2=radius * top_radius_fraction,
        depth=height,
        matrix=Matrix.Translation((0, 0, height / 2.0)),
    )
    return _mesh_object(spec.name, bm)


def _cylinder(spec: ObjectSpec) -> bpy.types.Object:
    obj = _cone(spec, 1.0)
    bevel = obj.modifiers.new("bevel", "BEVEL")
    bevel.width = 0.05 * spec.size
    bevel.segments = 2
    bevel.limit_method = "ANGLE"
    return obj


def _chair(spec: ObjectSpec) -> bpy.types.Object:
    """A stool-like chair: a seat on four thin legs and a backrest, `size` across the seat's diagonal."""
    bm = bmesh.new()
    side = spec.size / math.sqrt(2.0)
    height = spec.height or 1.6 * side
    seat_z, leg, slab = 0.5 * height, 0.09 * side, 0.08 * side
    parts = [((side, side, slab), (0.0, 0.0, seat_z - 0.5 * slab)),  # seat
             ((side, slab, height - seat_z), (0.0, 0.5 * (side - slab), 0.5 * (seat_z + height)))]  # backrest
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(((leg, leg, seat_z - slab), (sx * 0.5 * (side - leg), sy * 0.5 * (side - leg),
                                                      0.5 * (seat_z - slab))))
    for (dx, dy, dz), centre in parts:
        bmesh.ops.create_cube(bm, size=1.0, matrix=Matrix.Translation(centre) @ Matrix.Diagonal((dx, dy, dz, 1.0)))
    return _mesh_object(spec.name, bm)


def _ring(spec: ObjectSpec) -> bpy.types.Object:
    """A torus lying on the ground, `size` across, its tube `height` thick (default a tenth of the size)."""
    tube = 0.5 * (spec.height or 0.1 * spec.size)
    major = 0.5 * spec.size - tube
    around, across = np.meshgrid(np.linspace(0, 2 * np.pi, 64, endpoint=False),
                                 np.linspace(0, 2 * np.pi, 16, endpoint=False), indexing="ij")
    radius = major + tube * np.cos(across)
    points = np.stack([radius * np.cos(around), radius * np.sin(around), tube + tube * np.sin(across)], axis=-1)
    bm = bmesh.new()
    verts = [[bm.verts.new(tuple(p)) for p in row] for row in points]
    n, m = points.shape[:2]
    for i in range(n):
        for j in range(m):
            bm.faces.new((verts[i][j], verts[(i + 1) % n][j], verts[(i + 1) % n][(j + 1) % m], verts[i][(j + 1) % m]))
    return _mesh_object(spec.name, bm)


def _pybullet_model(spec: ObjectSpec) -> bpy.types.Object:
    try:
        import pybullet_data
    except ModuleNotFoundError as exc:
        raise DatasetError(Path(spec.shape), "needs the pybullet_data models: pip install pybullet") from exc
    path = Path(pybullet_data.getDataPath()) / spec.shape
    if not path.is_file():
        raise DatasetError(path, "pybullet_data model not found")
    before = set(bpy.data.objects)
    axes = {"up_axis": "Z", "forward_axis": "Y"} if spec.z_up else {}  # default: a Y-up OBJ becomes Z-up
    bpy.ops.wm.obj_import(filepath=str(path), **axes)
    imported = [obj for obj in bpy.data.objects if obj not in before and obj.type == "MESH"]
    if not imported:
        raise DatasetError(path, "the OBJ importer made no mesh object")
    obj = imported[0]
    if len(imported) > 1:  # a model made of several OBJ groups (the tray) becomes one object
        for other in bpy.context.view_layer.objects:
            other.select_set(other in imported)
        bpy.context.view_layer.objects.active = obj
        bpy.ops.object.join()
        if len([o for o in bpy.data.objects if o not in before and o.type == "MESH"]) != 1:
            raise DatasetError(path, f"could not join the {len(imported)} meshes the OBJ importer made")
    obj.name = spec.name
    # bake the importer's axis conversion into the mesh so the object transform is ours alone
    obj.data.transform(obj.matrix_world)
    obj.matrix_world = Matrix.Identity(4)
    for material in obj.data.materials:
        _make_matte(material)
    return obj


def _normalise(obj: bpy.types.Object, size: float) -> None:
    """Scale the mesh so its footprint diameter is `size`, centred on the z axis, resting on z = 0."""
    co = _vertex_array(obj.data)
    centre = 0.5 * (co.min(axis=0) + co.max(axis=0))
    radius = np.linalg.norm(co[:, :2] - centre[:2], axis=1).max()
    scale = size / (2.0 * radius)
    obj.data.transform(Matrix.Scale(scale, 4) @ Matrix.Translation((-centre[0], -centre[1], -co[:, 2].min())))


def _vertex_array(mesh: bpy.types.Mesh) -> np.ndarray:
    co = np.empty(len(mesh.vertices) * 3, np.float64)
    mesh.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def add_object(spec: ObjectSpec, pass_index: int) -> bpy.types.Object:
    """Create the object of `spec` at the origin (footprint centred on the z axis, resting on z = 0)."""
    builders = {"box": _box, "cylinder": _cylinder, "cone": lambda s: _cone(s, 0.0), "chair": _chair, "ring": _ring}
    if spec.shape in builders:
        obj = builders[spec.shape](spec)
        obj.data.materials.append(_matte_material(spec.name, spec.color))
    else:
        obj = _pybullet_model(spec)
        _normalise(obj, spec.size)
        if spec.color is not None:
            obj.data.materials.clear()
            obj.data.materials.append(_matte_material(spec.name, spec.color))
    obj.pass_index = pass_index
    return obj


def footprint_radius(obj: bpy.types.Object) -> float:
    """Largest distance of the evaluated mesh from the object's z axis (unchanged by a yaw)."""
    co = world_triangles(obj)[0]
    centre = np.asarray(obj.matrix_world.translation)
    return float(np.linalg.norm(co[:, :2] - centre[:2], axis=1).max())


def world_triangles(obj: bpy.types.Object) -> tuple[np.ndarray, np.ndarray]:
    """Evaluated (modifiers applied) triangles of `obj` in world coordinates: vertices [V,3], indices [F,3]."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        mesh.calc_loop_triangles()
        local = _vertex_array(mesh)
        triangles = np.empty(len(mesh.loop_triangles) * 3, np.int32)
        mesh.loop_triangles.foreach_get("vertices", triangles)
    finally:
        evaluated.to_mesh_clear()
    matrix = np.array(evaluated.matrix_world, dtype=np.float64)
    world = local @ matrix[:3, :3].T + matrix[:3, 3]
    return world, triangles.reshape(-1, 3)


def add_ground_plane(half_size: float, tones: tuple[tuple[float, float, float], tuple[float, float, float]]) -> None:
    """A finite two-tone checker plane at z = 0 (object index 0, i.e. background)."""
    bm = bmesh.new()
    bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=half_size)
    plane = _mesh_object("ground", bm)
    # 25 cm squares: texture for the field's geometry, low contrast
    material = _checker_material("ground", tones, scale=4.0, offset=(0.0, 0.0, 0.125))
    plane.data.materials.append(material)
    plane.pass_index = 0


def add_room(half_size: float, height: float, tones: tuple[tuple[float, float, float], ...]) -> None:
    """Four textured walls around the floor (object index 0): surroundings that reach far beyond the objects, as in a
    real capture. Each wall has its own colour and a coarse checker so that the field has something to lock on to."""
    for k, (tone, angle) in enumerate(zip(tones, (0.0, 0.5 * math.pi, math.pi, 1.5 * math.pi))):
        bm = bmesh.new()
        matrix = (Matrix.Rotation(angle, 4, "Z") @ Matrix.Translation((half_size, 0.0, 0.5 * height))
                  @ Matrix.Rotation(0.5 * math.pi, 4, "Y") @ Matrix.Diagonal((0.5 * height, half_size, 1.0, 1.0)))
        bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=1.0, matrix=matrix)
        wall = _mesh_object(f"wall{k}", bm)
        darker = tuple(0.7 * c for c in tone)
        wall.data.materials.append(_checker_material(f"wall{k}", (tone, darker), scale=1.5, offset=(0.125, 0.125, 0.125)))
        wall.pass_index = 0


def _checker_material(name: str, tones, scale: float, offset: tuple[float, float, float]) -> bpy.types.Material:
    """Matte 3-D checker on object coordinates; `offset` keeps the surface off the lattice where floor() flickers."""
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    coords = nodes.new("ShaderNodeTexCoord")
    mapping = nodes.new("ShaderNodeMapping")
    mapping.inputs["Location"].default_value = offset
    checker = nodes.new("ShaderNodeTexChecker")
    checker.inputs["Scale"].default_value = scale
    checker.inputs["Color1"].default_value = (*tones[0], 1.0)
    checker.inputs["Color2"].default_value = (*tones[1], 1.0)
    links.new(coords.outputs["Object"], mapping.inputs["Vector"])
    links.new(mapping.outputs["Vector"], checker.inputs["Vector"])
    links.new(checker.outputs["Color"], nodes["Principled BSDF"].inputs["Base Color"])
    _make_matte(material)
    return material


def add_lights(
    world_color: tuple[float, float, float], sun_strength: float, sun_direction: tuple[float, float]
) -> None:
    """Uniform world colour (seen beyond the plane, also a soft fill light) and a sun at (elevation, azimuth) deg."""
    world = bpy.data.worlds.new("world")
    world.use_nodes = True
    background = world.node_tree.nodes["Background"]
    background.inputs["Color"].default_value = (*world_color, 1.0)
    background.inputs["Strength"].default_value = 1.0
    bpy.context.scene.world = world
    sun = bpy.data.lights.new("sun", "SUN")
    sun.energy = sun_strength
    sun.angle = math.radians(8.0)  # slightly soft shadows
    sun_object = bpy.data.objects.new("sun", sun)
    elevation, azimuth = (math.radians(a) for a in sun_direction)
    # a sun shines along its local -z: tilt -z away from straight down towards the light's azimuth
    sun_object.rotation_euler = (math.pi / 2.0 - elevation, 0.0, azimuth + math.pi / 2.0)
    bpy.context.scene.collection.objects.link(sun_object)
