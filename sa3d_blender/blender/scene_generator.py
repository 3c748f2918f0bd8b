"""Render seeded multi-view datasets with exact object masks and ground-truth meshes (the project's test scenes).

Writes the scene-folder format: transforms.json (or LLFF's poses_bounds.npy for forward-facing presets), images/,
masks/, meshes/, ground_truth.json. Like real captures, the files carry no reconstruction box. Run it through
`python -m sa3d_blender make-scene` so bpy stays out of processes that also load torch.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from ..core.errors import DatasetError
from .scene_files import write_json, write_ply, write_png_gray8
from .scene_objects import (ObjectSpec, add_ground_plane, add_lights, add_object, add_room, footprint_radius,
                            world_triangles)

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]

LENS_MM = 50.0
SENSOR_WIDTH_MM = 36.0
ELEVATION_RANGE_DEG = (20.0, 65.0)
FRAME_FILL = 0.9  # the objects span at most this fraction of the image width or height
PLANE_HALF_SIZE = 1.25
WORLD_COLOR = (0.60, 0.68, 0.80)
PLANE_TONES = ((0.46, 0.44, 0.40), (0.56, 0.54, 0.50))
# the "room" surroundings: a floor and four walls far beyond the objects (metres), each wall its own colour
ROOM_HALF_SIZE = 4.0
ROOM_HEIGHT = 2.5
WALL_TONES = ((0.62, 0.52, 0.40), (0.40, 0.50, 0.60), (0.55, 0.58, 0.45), (0.60, 0.45, 0.50))
# camera rigs: "orbit" sits each camera as close as the frame allows on an elevation band; "varied" also moves them
# out to these multiples of that distance and lower, as a person walking around does; "forward" puts them on a
# grid in one plane, all looking the same way (an LLFF-style capture)
VARIED_DISTANCES = (1.0, 1.5, 2.2)
VARIED_ELEVATION_DEG = (10.0, 60.0)
FORWARD_ELEVATION_DEG = 25.0
FORWARD_DISTANCE = 1.4  # multiple of the fitted distance: room for the grid's side views to keep the objects in frame
FORWARD_SPREAD = 0.35  # grid half-width as a fraction of the camera distance
SUN = dict(sun_strength=3.0, sun_direction=(50.0, 35.0))

# distinct matte colours; the pybullet models keep their own textures
RED, BLUE, GREEN, PURPLE = (0.75, 0.12, 0.10), (0.12, 0.25, 0.75), (0.15, 0.55, 0.18), (0.45, 0.20, 0.60)
GREY, WOOD = (0.50, 0.50, 0.50), (0.55, 0.38, 0.22)
CONTACT_GAP = 0.003  # metres between the footprints of touching objects (in contact, not interpenetrating)


@dataclass(frozen=True)
class ScenePreset:
    """What a named preset renders: its objects, the number and size of the views, the split, the image quality."""

    objects: tuple[ObjectSpec, ...]
    n_views: int = 60
    resolution: int = 160
    test_every: int = 5  # view i is a test view when i % test_every == test_every - 1 (interleaved, deterministic)
    layout_radius: float = 0.30  # object centres are drawn in a disc of this radius (metres)
    samples: int = 16  # Cycles samples per pixel of the images (denoised when OpenImageDenoise is available)
    surroundings: str = "plane"  # "plane" (a 2.5 m checker plane under a uniform sky) or "room" (floor and walls)
    rig: str = "orbit"  # "orbit", "varied" or "forward" (see the constants above)
    llff: bool = False  # write poses_bounds.npy (LLFF) instead of transforms.json
    layout: str = "scattered"  # "scattered" (footprints 2 cm apart) or "touching" (each object pushed against the group)


PRESETS = {
    # 320 px: at 160 px a pixel is 6-7 mm on the objects, and the meshes' last errors (rims 1-3 mm off, the ball's
    # grazing lower third) were below what the photos and SAM's outlines could show. Same field budget, one demo
    # scene at each size: mesh F @ 1 % 0.892 -> 0.908 (ball 0.82 -> 0.92), textured PSNR 22.6 -> 25.2 dB
    "demo": ScenePreset(
        objects=(
            ObjectSpec("duck", "duck.obj", size=0.30),
            ObjectSpec("ball", "soccerball.obj", size=0.25),
            ObjectSpec("box", "box", size=0.28, color=RED),
            ObjectSpec("can", "cylinder", size=0.22, height=0.27, color=BLUE),
            ObjectSpec("cone", "cone", size=0.27, height=0.30, color=GREEN),
        ),
        resolution=320,
    ),
    "tiny": ScenePreset(
        objects=(
            ObjectSpec("duck", "duck.obj", size=0.30),
            ObjectSpec("box", "box", size=0.28, color=RED),
            ObjectSpec("can", "cylinder", size=0.20, height=0.26, color=PURPLE),
        ),
        n_views=24,
        resolution=96,
        test_every=4,
        layout_radius=0.22,
    ),
    # surroundings reaching far beyond the objects, cameras at several distances and heights, a ball in a tray
    "room": ScenePreset(
        objects=(
            ObjectSpec("duck", "duck.obj", size=0.30),
            ObjectSpec("tray", "tray/tray_textured.obj", size=0.42, z_up=True),
            ObjectSpec("ball", "soccerball.obj", size=0.15, inside="tray", lift=0.006),  # on its base plate
            ObjectSpec("box", "box", size=0.28, color=RED),
            ObjectSpec("can", "cylinder", size=0.22, height=0.27, color=BLUE),
        ),
        layout_radius=0.35,
        surroundings="room",
        rig="varied",
    ),
    # forward-facing, LLFF format: every camera looks at the objects from one side, walls behind them
    "forward": ScenePreset(
        objects=(
            ObjectSpec("duck", "duck.obj", size=0.30),
            ObjectSpec("box", "box", size=0.28, color=RED),
            ObjectSpec("cone", "cone", size=0.27, height=0.30, color=GREEN),
        ),
        n_views=32,
        test_every=8,
        surroundings="room",
        rig="forward",
        llff=True,
    ),
    # look-alikes in contact: three identical bunnies and two identical cubes of one grey, pushed against each other
    "lookalike": ScenePreset(
        objects=(
            *(ObjectSpec(f"bunny{k}", "bunny.obj", size=0.24, color=GREY) for k in (1, 2, 3)),
            *(ObjectSpec(f"cube{k}", "box", size=0.22, color=GREY) for k in (1, 2)),
        ),
        layout="touching",
    ),
    # thin and occluded: a chair on thin legs, a flat ring, a duck and a can half hidden behind a tall box
    "thin": ScenePreset(
        objects=(
            ObjectSpec("chair", "chair", size=0.30, color=WOOD),
            ObjectSpec("ring", "ring", size=0.26, height=0.035, color=PURPLE),
            ObjectSpec("pillar", "box", size=0.20, height=0.36, color=RED),
            ObjectSpec("duck", "duck.obj", size=0.24),
            ObjectSpec("can", "cylinder", size=0.14, height=0.18, color=BLUE),
        ),
        layout="touching",
    ),
}


def make_scene(
    out_dir: str | Path,
    preset: str = "demo",
    seed: int = 0,
    resolution: int | None = None,
    n_views: int | None = None,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> dict:
    """Render the scene of `preset` with `seed` into `out_dir` (atomically) and return a summary."""
    start = time.perf_counter()
    out_dir = Path(out_dir).absolute()
    if preset not in PRESETS:
        raise DatasetError(out_dir, f"unknown scene preset {preset!r}; choose one of {sorted(PRESETS)}")
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not overwrite)):
        raise DatasetError(out_dir, "already exists and is not empty (pass overwrite=True / --overwrite to replace it)")
    settings = PRESETS[preset]
    resolution = resolution or settings.resolution
    n_views = n_views or settings.n_views
    if resolution < 16 or n_views < 2:
        raise DatasetError(out_dir, f"need resolution >= 16 and at least 2 views, got {resolution} px, {n_views} views")
    report = progress or (lambda fraction, message: log.info("%3.0f%% %s", 100 * fraction, message))

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    staging.chmod(0o755)  # mkdtemp makes it owner-only; it becomes the scene folder
    try:
        with _blender_stdout_silenced():
            summary = _render_scene(staging, settings, preset, seed, resolution, n_views, report)
        _move_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    summary.update(out_dir=str(out_dir), seconds=round(time.perf_counter() - start, 2))
    report(1.0, f"scene written to {out_dir}")
    return summary


def _move_into_place(staging: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    out_dir.rename(old)
    staging.rename(out_dir)
    shutil.rmtree(old)


def _render_scene(
    root: Path, settings: ScenePreset, preset: str, seed: int, resolution: int, n_views: int, report: Progress
) -> dict:
    rng = np.random.default_rng(seed)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    report(0.0, f"building the {preset!r} scene (seed {seed})")
    objects = [add_object(spec, index) for index, spec in enumerate(settings.objects, start=1)]
    _place_objects(objects, settings.objects, settings.layout_radius, rng, settings.layout == "touching")
    if settings.surroundings == "room":
        add_ground_plane(ROOM_HALF_SIZE, PLANE_TONES)
        add_room(ROOM_HALF_SIZE, ROOM_HEIGHT, WALL_TONES)
    else:
        add_ground_plane(PLANE_HALF_SIZE, PLANE_TONES)
    add_lights(WORLD_COLOR, **SUN)

    for folder in ("images", "masks", "meshes"):
        (root / folder).mkdir()
    meshes = {obj.name: world_triangles(obj) for obj in objects}
    for name, (vertices, triangles) in meshes.items():
        write_ply(root / "meshes" / f"{name}.ply", vertices, triangles)
    all_vertices = np.concatenate([vertices for vertices, _ in meshes.values()])

    camera = _add_camera(scene, resolution)
    poses = _camera_poses(n_views, all_vertices, rng, settings.rig)
    names = [f"{i:04d}" for i in range(n_views)]
    _configure_cycles(scene, seed)

    image_seconds, c2w = _render_images(scene, camera, poses, names, root, settings.samples, report)
    samples, denoiser = scene.cycles.samples, (scene.cycles.denoiser if scene.cycles.use_denoising else None)
    mask_seconds, masks = _render_masks(scene, camera, poses, names, root, len(objects), report)

    if settings.llff:
        # LLFF has no split in the file: the loader holds out every 8th view
        _write_poses_bounds(root / "poses_bounds.npy", c2w, resolution, settings, all_vertices)
        is_test = [i % 8 == 0 for i in range(n_views)]
    else:
        is_test = [i % settings.test_every == settings.test_every - 1 for i in range(n_views)]
        write_json(root / "transforms.json", _transforms_json(names, c2w, is_test, resolution))
    write_json(
        root / "ground_truth.json",
        {
            "version": 1,
            "objects": [
                {"index": obj.pass_index, "name": obj.name, "mesh": f"meshes/{obj.name}.ply"} for obj in objects
            ],
            "masks": {name: f"masks/{name}.png" for name in names},
            "seed": seed,
            "preset": preset,
        },
    )
    return {
        "preset": preset,
        "seed": seed,
        "resolution": resolution,
        "n_views": n_views,
        "n_train": n_views - sum(is_test),
        "n_test": sum(is_test),
        "objects": [obj.name for obj in objects],
        "samples": samples,
        "denoiser": denoiser,
        "seconds_per_view_image": round(image_seconds / n_views, 3),
        "seconds_per_view_mask": round(mask_seconds / n_views, 3),
        "object_width_fraction": _median_width_fractions(masks, [obj.name for obj in objects]),
    }


def _transforms_json(names: list[str], c2w: list[np.ndarray], is_test: list[bool], resolution: int) -> dict:
    """nerfstudio-flavoured transforms.json: Blender's pinhole intrinsics, OpenGL c2w and the split; no box."""
    focal = LENS_MM / SENSOR_WIDTH_MM * resolution  # sensor fit horizontal, square pixels
    files = [f"images/{name}.png" for name in names]
    return {
        "camera_model": "OPENCV",
        "fl_x": focal,
        "fl_y": focal,
        "cx": resolution / 2.0,
        "cy": resolution / 2.0,
        "w": resolution,
        "h": resolution,
        "k1": 0.0,
        "k2": 0.0,
        "p1": 0.0,
        "p2": 0.0,
        "frames": [{"file_path": f, "transform_matrix": m.tolist()} for f, m in zip(files, c2w)],
        "train_filenames": [f for f, test in zip(files, is_test) if not test],
        "test_filenames": [f for f, test in zip(files, is_test) if test],
    }


def _write_poses_bounds(path: Path, c2w: list[np.ndarray], resolution: int, settings: ScenePreset,
                        object_vertices: np.ndarray) -> None:
    """LLFF's poses_bounds.npy: per view the 3x5 [down, right, back, centre, (h, w, focal)] matrix and the scene's
    near and far depth (0.1 and 99.9 percentiles of scene points in view, as LLFF takes them from COLMAP's points)."""
    focal = LENS_MM / SENSOR_WIDTH_MM * resolution
    points = np.concatenate([object_vertices, _surroundings_points(settings)])
    rows = []
    for m in c2w:
        right, up, back, centre = m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3]
        local = (points - centre) @ m[:3, :3]
        depth = -local[:, 2]
        half = 0.5 * resolution / focal
        seen = (depth > 1e-3) & (np.abs(local[:, 0]) <= half * depth) & (np.abs(local[:, 1]) <= half * depth)
        near, far = np.percentile(depth[seen], [0.1, 99.9])
        pose = np.stack([-up, right, back, centre, [resolution, resolution, focal]], axis=1)
        rows.append(np.concatenate([pose.reshape(-1), [near, far]]))
    np.save(path, np.array(rows))


def _surroundings_points(settings: ScenePreset, step: float = 0.1) -> np.ndarray:
    """Points on the floor (and walls) that a camera may see, for the depth bounds."""
    half = ROOM_HALF_SIZE if settings.surroundings == "room" else PLANE_HALF_SIZE
    grid = np.arange(-half, half + 1e-9, step)
    x, y = np.meshgrid(grid, grid, indexing="ij")
    floor = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], axis=1)
    if settings.surroundings != "room":
        return floor
    heights = np.arange(0.0, ROOM_HEIGHT + 1e-9, step)
    a, h = np.meshgrid(grid, heights, indexing="ij")
    a, h = a.ravel(), h.ravel()
    side = np.full(a.size, half)
    walls = [np.stack(c, axis=1) for c in ((side, a, h), (-side, a, h), (a, side, h), (a, -side, h))]
    return np.concatenate([floor, *walls])


def _place_objects(objects: list[bpy.types.Object], specs: tuple[ObjectSpec, ...], layout_radius: float,
                   rng: np.random.Generator, touching: bool = False) -> None:
    """Random yaw and non-overlapping footprints in a disc (or, `touching`, in contact with each other), the group
    then centred on the origin; an object that rests inside another (`spec.inside`) goes to its container's centre,
    `spec.lift` above its base."""
    by_name = {obj.name: obj for obj in objects}
    free = [obj for obj, spec in zip(objects, specs) if spec.inside is None]
    if touching:  # the outline that touches depends on the yaw
        yaws = rng.random(len(free)) * 2.0 * math.pi
        for obj, yaw in zip(free, yaws):
            obj.rotation_euler = (0.0, 0.0, yaw)
        bpy.context.view_layer.update()
        xy = _touching_centres([_footprint_outline(obj) for obj in free], rng)
    else:  # centres first, then yaws: the order the earlier scenes were drawn in
        xy = _non_overlapping_centres([footprint_radius(obj) for obj in free], layout_radius, gap=0.02, rng=rng)
        yaws = rng.random(len(free)) * 2.0 * math.pi
    xy -= xy.mean(axis=0)
    for obj, (x, y), yaw in zip(free, xy, yaws):
        obj.location = (x, y, 0.0)
        obj.rotation_euler = (0.0, 0.0, yaw)
    for obj, spec in zip(objects, specs):
        if spec.inside is not None:
            container = by_name[spec.inside]
            obj.location = (container.location.x, container.location.y, container.location.z + spec.lift)
            obj.rotation_euler = (0.0, 0.0, rng.random() * 2.0 * math.pi)
    bpy.context.view_layer.update()


def _non_overlapping_centres(
    radii: list[float], layout_radius: float, gap: float, rng: np.random.Generator
) -> np.ndarray:
    """Centres in a disc such that footprints (circles of `radii`) stay `gap` apart; one at a time, restarting when
    an object finds no room."""
    for _restart in range(1000):
        centres: list[np.ndarray] = []
        for radius in radii:
            for _try in range(200):
                r, phi = layout_radius * math.sqrt(rng.random()), 2.0 * math.pi * rng.random()
                candidate = np.array([r * math.cos(phi), r * math.sin(phi)])
                if all(np.linalg.norm(candidate - c) >= radius + radii[k] + gap for k, c in enumerate(centres)):
                    centres.append(candidate)
                    break
            else:
                break
        if len(centres) == len(radii):
            return np.array(centres)
    raise RuntimeError(f"could not place {len(radii)} objects in a disc of radius {layout_radius} m")


def _footprint_outline(obj: bpy.types.Object, spacing: float = 0.002) -> np.ndarray:
    """Points every `spacing` metres along the convex outline of the object's footprint, relative to its origin."""
    from scipy.spatial import ConvexHull

    xy = world_triangles(obj)[0][:, :2] - np.asarray(obj.matrix_world.translation)[:2]
    corners = xy[ConvexHull(xy).vertices]
    points = []
    for a, b in zip(corners, np.roll(corners, -1, axis=0)):
        steps = max(int(np.linalg.norm(b - a) / spacing), 1)
        points.append(a + (b - a) * (np.arange(steps) / steps)[:, None])
    return np.concatenate(points)


def _touching_centres(outlines: list[np.ndarray], rng: np.random.Generator, step: float = 0.001) -> np.ndarray:
    """Centres that put each footprint in contact with the group: the first at the origin, each next one slid in from
    a random direction towards the group's centre until its outline comes within CONTACT_GAP of another's."""
    from scipy.spatial import cKDTree

    centres = [np.zeros(2)]
    for outline in outlines[1:]:
        placed = cKDTree(np.concatenate([o + c for o, c in zip(outlines, centres)]))
        middle = np.mean(centres, axis=0)
        reach = np.ptp(placed.data, axis=0).max() + np.ptp(outline, axis=0).max()
        angle = 2.0 * math.pi * rng.random()
        direction = np.array([math.cos(angle), math.sin(angle)])
        for distance in np.arange(reach, -reach, -step):
            centre = middle + distance * direction
            if placed.query(outline + centre)[0].min() < CONTACT_GAP:
                break
        centres.append(centre)
    return np.array(centres)


def _add_camera(scene: bpy.types.Scene, resolution: int) -> bpy.types.Object:
    data = bpy.data.cameras.new("camera")
    data.type = "PERSP"
    data.lens_unit = "MILLIMETERS"
    data.lens = LENS_MM
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width = SENSOR_WIDTH_MM
    data.shift_x = data.shift_y = 0.0
    data.clip_start, data.clip_end = 0.01, 100.0
    camera = bpy.data.objects.new("camera", data)
    scene.collection.objects.link(camera)
    scene.camera = camera
    render = scene.render
    render.resolution_x = render.resolution_y = resolution
    render.resolution_percentage = 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    return camera


def _camera_poses(n_views: int, vertices: np.ndarray, rng: np.random.Generator, rig: str = "orbit") -> list[Matrix]:
    """Camera-to-world matrices looking at the objects' centre, for the preset's rig.

    "orbit" and "varied": a Fibonacci spiral over an elevation band (uniform in sin(elevation), golden-angle azimuth
    steps) covers it evenly for any number of views; each camera is as close as it can be with every object inside
    the image ("varied" then moves it out by one of VARIED_DISTANCES). "forward": a grid of positions in one plane,
    every camera aimed at the centre.
    """
    target = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
    azimuth0 = rng.random() * 2.0 * math.pi
    if rig == "forward":
        back = _direction(math.radians(FORWARD_ELEVATION_DEG), azimuth0)
        distance = FORWARD_DISTANCE * _fitted_distance(vertices, target, back)
        right, up = _look_axes(back)[:, 0], _look_axes(back)[:, 1]
        cols = int(math.ceil(math.sqrt(n_views * 1.5)))
        rows = int(math.ceil(n_views / cols))
        spread = FORWARD_SPREAD * distance
        poses = []
        for i in range(n_views):
            u = (i % cols) / max(cols - 1, 1) * 2 - 1
            v = (i // cols) / max(rows - 1, 1) * 2 - 1
            eye = target + distance * back + spread * (u * right + 0.5 * v * up)
            poses.append(_pose_looking_at(eye, target))
        return poses
    low, high = VARIED_ELEVATION_DEG if rig == "varied" else ELEVATION_RANGE_DEG
    lo, hi = math.sin(math.radians(low)), math.sin(math.radians(high))
    golden_angle = math.pi * (3.0 - math.sqrt(5.0))
    poses = []
    for i in range(n_views):
        elevation = math.asin(lo + (hi - lo) * (i + 0.5) / n_views)
        back = _direction(elevation, azimuth0 + i * golden_angle)
        distance = _fitted_distance(vertices, target, back)
        if rig == "varied":
            distance *= VARIED_DISTANCES[i % len(VARIED_DISTANCES)]
        poses.append(_pose_looking_at(target + distance * back, target))
    return poses


def _direction(elevation: float, azimuth: float) -> np.ndarray:
    return np.array([math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth),
                     math.sin(elevation)])


def _look_axes(back: np.ndarray) -> np.ndarray:
    """OpenGL camera rotation (columns right, up, back) for a camera looking along -back with z up."""
    right = np.cross(-back, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    return np.stack([right, np.cross(back, right), back], axis=1)


def _pose_looking_at(eye: np.ndarray, target: np.ndarray) -> Matrix:
    back = (eye - target) / np.linalg.norm(eye - target)
    c2w = np.eye(4)
    c2w[:3, :3], c2w[:3, 3] = _look_axes(back), eye
    return Matrix(c2w.tolist())


def _fitted_distance(vertices: np.ndarray, target: np.ndarray, back: np.ndarray) -> float:
    """The closest distance along `back` at which every vertex is within the central FRAME_FILL of the image."""
    tan_limit = FRAME_FILL * SENSOR_WIDTH_MM / (2.0 * LENS_MM)
    # with the camera at target + d * back, a point at camera-frame offset r from the target has depth d - r_z;
    # it is in frame when |r_x|, |r_y| <= tan_limit * (d - r_z)
    offsets = (vertices - target) @ _look_axes(back)
    return float(np.max(offsets[:, 2] + np.abs(offsets[:, :2]).max(axis=1) / tan_limit))


def _configure_cycles(scene: bpy.types.Scene, seed: int) -> None:
    scene.render.engine = "CYCLES"
    cycles = scene.cycles
    cycles.device = "CPU"
    cycles.seed = seed
    cycles.use_animated_seed = False
    cycles.use_adaptive_sampling = False
    cycles.max_bounces = 4
    cycles.diffuse_bounces = 3
    cycles.glossy_bounces = 1
    cycles.transmission_bounces = 0
    cycles.transparent_max_bounces = 2
    cycles.caustics_reflective = cycles.caustics_refractive = False
    scene.render.threads_mode = "FIXED"
    scene.render.threads = 2
    scene.render.use_motion_blur = False
    scene.render.film_transparent = False
    scene.view_settings.view_transform = "Standard"  # plain sRGB, no filmic tone curve
    scene.view_settings.look = "None"
    scene.view_layers[0].use_pass_object_index = True


@contextmanager
def _blender_stdout_silenced() -> Iterator[None]:
    """Send what Blender prints on the C-level stdout (importer warnings, per-render progress) to /dev/null.

    The CLI keeps stdout for its JSON result, and dozens of renders would bury the log.
    """
    if os.name != "posix":
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        ctypes.CDLL(None).fflush(None)  # drain C stdio buffers while they still point at /dev/null
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _denoiser_available() -> bool:
    import _cycles  # Cycles' own module; bpy wheels may be built without OpenImageDenoise

    return bool(getattr(_cycles, "with_openimagedenoise", False))


def _render_images(
    scene: bpy.types.Scene,
    camera: bpy.types.Object,
    poses: list[Matrix],
    names: list[str],
    root: Path,
    samples: int,
    report: Progress,
) -> tuple[float, list[np.ndarray]]:
    """Render the images; returns the seconds taken and the camera matrices exactly as Blender used them."""
    denoise = _denoiser_available()
    scene.cycles.use_denoising = denoise
    if denoise:
        scene.cycles.denoiser = "OPENIMAGEDENOISE"
    scene.cycles.samples = samples if denoise else 4 * samples  # without a denoiser only more samples lower the noise
    scene.cycles.pixel_filter_type = "BLACKMAN_HARRIS"
    scene.cycles.filter_width = 1.5
    scene.render.use_compositing = False
    settings = scene.render.image_settings
    settings.file_format, settings.color_mode, settings.color_depth = "PNG", "RGB", "8"
    c2w = []
    start = time.perf_counter()
    for i, (pose, name) in enumerate(zip(poses, names)):
        camera.matrix_world = pose
        c2w.append(np.array(camera.matrix_world, dtype=np.float64))
        scene.render.filepath = str(root / "images" / f"{name}.png")
        bpy.ops.render.render(write_still=True)
        report(0.05 + 0.8 * (i + 1) / len(poses), f"rendered image {name}")
    return time.perf_counter() - start, c2w


def _render_masks(
    scene: bpy.types.Scene,
    camera: bpy.types.Object,
    poses: list[Matrix],
    names: list[str],
    root: Path,
    n_objects: int,
    report: Progress,
) -> tuple[float, list[np.ndarray]]:
    """Object Index pass at 1 spp with a tiny box filter: each pixel holds the id of the surface seen at its centre."""
    scene.cycles.samples = 1
    scene.cycles.use_denoising = False
    scene.cycles.pixel_filter_type = "BOX"
    scene.cycles.filter_width = 0.01  # the minimum: the one sample per pixel goes through the pixel centre
    scene.render.use_compositing = True
    exr_dir = root / ".index_pass"
    exr_dir.mkdir()
    _index_compositor(scene, exr_dir)
    masks = []
    start = time.perf_counter()
    for i, (pose, name) in enumerate(zip(poses, names)):
        camera.matrix_world = pose
        bpy.ops.render.render()
        mask = _read_index_pass(exr_dir, n_objects)
        write_png_gray8(root / "masks" / f"{name}.png", mask)
        masks.append(mask)
        report(0.85 + 0.15 * (i + 1) / len(poses), f"rendered mask {name}")
    seconds = time.perf_counter() - start
    exr_dir.rmdir()
    return seconds, masks


def _index_compositor(scene: bpy.types.Scene, directory: Path) -> None:
    """Compositor: Render Layers' Object Index -> File Output (32-bit float EXR in `directory`)."""
    if hasattr(scene, "compositing_node_group"):  # Blender >= 5.0
        tree = bpy.data.node_groups.new("object index", "CompositorNodeTree")
        scene.compositing_node_group = tree
    else:
        scene.use_nodes = True
        tree = scene.node_tree
        tree.nodes.clear()
    layers = tree.nodes.new("CompositorNodeRLayers")
    output = tree.nodes.new("CompositorNodeOutputFile")
    output.format.file_format = "OPEN_EXR"
    output.format.color_depth = "32"
    if hasattr(output, "directory"):  # Blender >= 5.0: named items instead of file slots
        output.directory = str(directory)
        output.file_name = "index"
        if not output.inputs:
            output.file_output_items.new("FLOAT", "index")
    else:
        output.base_path = str(directory)
        output.file_slots[0].path = "index"
    tree.links.new(layers.outputs["IndexOB"], output.inputs[0])


def _read_index_pass(directory: Path, n_objects: int) -> np.ndarray:
    files = sorted(directory.glob("*.exr"))
    if len(files) != 1:
        raise RuntimeError(f"expected one object-index EXR in {directory}, found {[f.name for f in files]}")
    image = bpy.data.images.load(str(files[0]), check_existing=False)
    try:
        width, height = image.size
        pixels = np.empty(width * height * image.channels, np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
        files[0].unlink()
    # Blender stores images bottom row first
    index = pixels.reshape(height, width, -1)[::-1, :, 0]
    mask = np.rint(index)
    if np.abs(index - mask).max() > 1e-3 or mask.min() < 0 or mask.max() > n_objects:
        raise RuntimeError(f"object-index pass is not ids 0..{n_objects} (values {index.min()}..{index.max()})")
    return mask.astype(np.uint8)


def _median_width_fractions(masks: list[np.ndarray], names: list[str]) -> dict[str, float]:
    """Median over the views where an object is visible of its mask's width as a fraction of the image width."""
    fractions: dict[str, float] = {}
    for index, name in enumerate(names, start=1):
        widths = []
        for mask in masks:
            columns = np.flatnonzero((mask == index).any(axis=0))
            if columns.size:
                widths.append((columns[-1] - columns[0] + 1) / mask.shape[1])
        fractions[name] = round(float(np.median(widths)), 3) if widths else 0.0
    return fractions
