"""The add-on's operators and their failure paths, the click prompt's event logic, and mesh import.

Operators run in the installed extension inside a bpy subprocess; in background mode bpy.ops runs execute()
(blocking) and raises RuntimeError carrying the operator's error report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from addon_manifest.bpy_sandbox import INSTALL_EXTENSION, run_bpy
from addon_manifest.build import build_extension
from sa3d_blender.blender.prompt_clicks import PromptAction, PromptClicks, handle_prompt_event

# --- click prompt event logic (pure) ------------------------------------------------------------------------------------


@dataclass
class FakeEvent:
    type: str
    value: str = "PRESS"
    shift: bool = False
    ctrl: bool = False
    mouse_region_x: int = 0
    mouse_region_y: int = 0
    mouse_x: int = 0
    mouse_y: int = 0


def pixel_of(x, y):
    """A 100x100 region showing a 50x50 image at 2 region px per pixel; region y up, image y down."""
    if not (0 <= x < 100 and 0 <= y < 100):
        return None
    return x / 2, (100 - y) / 2


def test_clicks_positive_negative_undo_and_segment():
    clicks = PromptClicks()
    assert handle_prompt_event(clicks, FakeEvent("LEFTMOUSE", mouse_region_x=20, mouse_region_y=80), pixel_of) is PromptAction.CHANGED
    assert handle_prompt_event(clicks, FakeEvent("LEFTMOUSE", shift=True, mouse_region_x=60, mouse_region_y=10),
                               pixel_of) is PromptAction.CHANGED
    assert clicks.points == [(10.0, 10.0), (30.0, 45.0)] and clicks.labels == [1, 0]
    assert handle_prompt_event(clicks, FakeEvent("Z", ctrl=True), pixel_of) is PromptAction.CHANGED
    assert clicks.points == [(10.0, 10.0)] and clicks.labels == [1]
    assert handle_prompt_event(clicks, FakeEvent("RET"), pixel_of) is PromptAction.SEGMENT


def test_clicks_outside_the_image_releases_and_other_keys_change_nothing():
    clicks = PromptClicks()
    for event in (FakeEvent("LEFTMOUSE", mouse_region_x=150, mouse_region_y=50), FakeEvent("LEFTMOUSE", "RELEASE"),
                  FakeEvent("X"), FakeEvent("Z", ctrl=True)):
        assert handle_prompt_event(clicks, event, pixel_of) is PromptAction.IGNORED
    assert clicks.points == []


def test_enter_needs_a_positive_click_and_escape_cancels():
    clicks = PromptClicks()
    handle_prompt_event(clicks, FakeEvent("LEFTMOUSE", shift=True, mouse_region_x=5, mouse_region_y=5), pixel_of)
    assert handle_prompt_event(clicks, FakeEvent("NUMPAD_ENTER"), pixel_of) is PromptAction.IGNORED
    assert handle_prompt_event(clicks, FakeEvent("ESC"), pixel_of) is PromptAction.CANCEL
    assert handle_prompt_event(clicks, FakeEvent("RIGHTMOUSE"), pixel_of) is PromptAction.CANCEL


def test_mask_layer_of_a_12_mp_photo_is_bounded_and_bottom_row_first():
    from sa3d_blender.blender import overlay

    mask = np.zeros((3024, 4032), dtype=bool)
    mask[:400, :400] = True  # top-left corner of the photo
    data, (width, height) = overlay.mask_texture_pixels(mask)
    assert (width, height) == (1008, 756) and data.dtype == np.float32 and data.size == width * height * 4
    rgba = data.reshape(height, width, 4)
    assert rgba[-1, 0, 3] == np.float32(overlay.MASK_RGBA[3]) and rgba[0, 0, 3] == 0  # GPU rows start at the bottom
    assert rgba[-100, 99, 3] > 0 and rgba[-101, 100, 3] == 0


def test_escape_cancels_a_job_only_over_the_area_it_was_started_from():
    from sa3d_blender.blender.jobs import escape_is_ours

    started_in = (100, 50, 400, 300)  # x, y, width, height in window pixels
    assert escape_is_ours(started_in, FakeEvent("ESC", mouse_x=120, mouse_y=340))
    assert not escape_is_ours(started_in, FakeEvent("ESC", mouse_x=520, mouse_y=100))  # another editor
    assert not escape_is_ours(started_in, FakeEvent("ESC", mouse_x=120, mouse_y=350))


def test_navigation_passes_through_to_blender():
    clicks = PromptClicks()
    for kind in ("MIDDLEMOUSE", "WHEELUPMOUSE", "MOUSEMOVE", "TRACKPADPAN"):
        assert handle_prompt_event(clicks, FakeEvent(kind), pixel_of) is PromptAction.PASS_THROUGH


# --- operators in the installed extension (bpy subprocess) -------------------------------------------------------------

SETUP = INSTALL_EXTENSION + """
import os, signal, sys, threading
scene = bpy.context.scene
props = scene.sa3d
prefs = bpy.context.preferences.addons[ADDON].preferences
session = sys.modules[ADDON + ".sa3d_blender.blender.worker_session"]
def object_names():
    return sorted(o.name for o in bpy.data.objects)
def run(op, **kwargs):
    try:
        return {"result": sorted(op(**kwargs)), "error": None}
    except RuntimeError as error:  # background bpy.ops raise the operator's ERROR report
        return {"result": ["CANCELLED"], "error": str(error)}
"""


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory):
    return build_extension(tmp_path_factory.mktemp("dist"))


def run_addon(snippet, zip_path, tmp_path, **variables):
    return run_bpy(SETUP + snippet, tmp_path, variables={"ZIP": str(zip_path), **variables},
                   env={"SA3D_THREADS": "1"}, repo_on_path=False, timeout=170)


def test_import_of_an_unreadable_dataset_is_cancelled_and_changes_nothing(extension_zip, tmp_path):
    bad = tmp_path / "capture"
    bad.mkdir()
    (bad / "transforms.json").write_text('{"frames": [ {"file_path": ')
    result = run_addon("""
before = object_names()
props.dataset_path = BAD
outcome = run(bpy.ops.sa3d.import_scene)
report({**outcome, "unchanged": object_names() == before})
""", extension_zip, tmp_path, BAD=str(bad))
    assert result["result"] == ["CANCELLED"]
    assert "transforms.json" in result["error"] and "not valid JSON" in result["error"]
    assert result["unchanged"]


def test_import_creates_nerf_space_with_one_camera_per_view(extension_zip, tmp_path, tiny_scene):
    result = run_addon("""
props.dataset_path = DATASET
outcome = run(bpy.ops.sa3d.import_scene)
space = next(o for o in scene.objects if "sa3d_nerf_space" in o)
report({**outcome, "cameras": len([o for o in space.children if o.type == "CAMERA"]), "space": space.name})
""", extension_zip, tmp_path, DATASET=str(tiny_scene))
    assert result == {"result": ["FINISHED"], "error": None, "cameras": 24, "space": "NeRF space"}


def test_wrong_worker_python_is_cancelled_with_a_message_naming_it(extension_zip, tmp_path, tiny_scene):
    result = run_addon("""
prefs.worker_python = "/nonexistent/bin/python3"
props.dataset_path = DATASET
props.field_path = FIELD
before = object_names()
outcome = run(bpy.ops.sa3d.train)
report({**outcome, "unchanged": object_names() == before, "status": props.progress_text})
""", extension_zip, tmp_path, DATASET=str(tiny_scene), FIELD=str(tmp_path / "field.pt"))
    assert result["result"] == ["CANCELLED"]
    assert "/nonexistent/bin/python3" in result["error"] and "does not exist" in result["error"]
    assert "/nonexistent/bin/python3" in result["status"]
    assert result["unchanged"]


INTERRUPTED_TRAINING = """
props.dataset_path = DATASET
props.field_path = FIELD
props.train_seconds = 120
bpy.ops.sa3d.import_scene()
before = object_names()
client = session.client(sys.modules[ADDON + ".sa3d_blender.blender.preferences"].worker_settings(bpy.context))
pid = client.call("ping")["pid"]
if KILL:
    threading.Timer(DELAY, os.kill, (pid, signal.SIGKILL)).start()
else:
    threading.Timer(DELAY, session.request_cancel).start()
outcome = run(bpy.ops.sa3d.train)
report({**outcome, "unchanged": object_names() == before, "field_written": os.path.exists(FIELD),
        "busy": session.is_busy()})
"""


@pytest.mark.parametrize("kill", [True, False], ids=["worker-killed", "cancelled"])
def test_interrupted_training_is_cancelled_and_changes_nothing(extension_zip, tmp_path, tiny_scene, kill):
    result = run_addon(INTERRUPTED_TRAINING, extension_zip, tmp_path, DATASET=str(tiny_scene),
                       FIELD=str(tmp_path / "field.pt"), KILL=kill, DELAY=6.0)
    assert result["result"] == ["CANCELLED"]
    if kill:
        assert "killed by signal SIGKILL" in result["error"], result["error"]
    else:
        assert "Train Field cancelled" in result["error"], result["error"]
    assert result["unchanged"] and not result["field_written"] and not result["busy"]


def test_mesh_import_builds_a_coloured_mesh_under_nerf_space(extension_zip, tmp_path, tiny_scene):
    npz = tmp_path / "mesh.npz"
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], dtype=np.int32)
    colors = np.array([[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255], [128, 128, 128, 255]], dtype=np.uint8)
    np.savez(npz, vertices=vertices, faces=faces, colors=colors)
    result = run_addon("""
import numpy as np
mesh_import = sys.modules[ADDON + ".sa3d_blender.blender.mesh_import"]
props.dataset_path = DATASET
bpy.ops.sa3d.import_scene()
space = next(o for o in scene.objects if "sa3d_nerf_space" in o)
space.location = (5, 0, 0)
obj = mesh_import.import_mesh(scene, "duck", NPZ, space)
obj = mesh_import.import_mesh(scene, "duck", NPZ, space)  # re-import replaces, keeps the name
bpy.context.view_layer.update()
attr = obj.data.color_attributes["Col"]
colors = np.empty(4 * len(obj.data.vertices), dtype=np.float32)
attr.data.foreach_get("color", colors)
links = [(l.from_node.bl_idname, l.from_node.layer_name, l.to_socket.name) for l in obj.active_material.node_tree.links
         if l.from_node.bl_idname == "ShaderNodeVertexColor"]
report({"name": obj.name, "ducks": len([o for o in bpy.data.objects if o.get("sa3d_object") == "duck"]),
        "domain": attr.domain, "type": attr.data_type, "colors": colors.reshape(-1, 4).round(4).tolist(),
        "faces": len(obj.data.polygons), "parent": obj.parent.name, "world_vertex": list(obj.matrix_world @ obj.data.vertices[1].co),
        "origin": list(obj.matrix_world.translation),
        "links": links})
""", extension_zip, tmp_path, DATASET=str(tiny_scene), NPZ=str(npz))
    assert result["name"] == "duck" and result["ducks"] == 1
    assert (result["domain"], result["type"]) == ("POINT", "FLOAT_COLOR")
    # sRGB 128/255 -> linear 0.2158
    np.testing.assert_allclose(result["colors"], [[1, 0, 0, 1], [0, 1, 0, 1], [0, 0, 1, 1], [0.2158, 0.2158, 0.2158, 1]], atol=1e-3)
    assert result["faces"] == 4 and result["parent"] == "NeRF space"
    np.testing.assert_allclose(result["world_vertex"], [6, 0, 0], atol=1e-6)
    np.testing.assert_allclose(result["origin"], [5.5, 0.5, 0], atol=1e-6)  # the centre of its base, under NeRF space
    assert result["links"] == [["ShaderNodeVertexColor", "Col", "Base Color"]]


LOAD_FILE_MID_JOB = """
overlay = sys.modules[ADDON + ".sa3d_blender.blender.overlay"]
props.dataset_path = DATASET
bpy.ops.sa3d.import_scene()
session.release()  # the next job starts a new worker, without waiting for it
client = session.client(sys.modules[ADDON + ".sa3d_blender.blender.preferences"].worker_settings(bpy.context))
# what a running Train Field holds: the busy panel, a worker job, the click overlay's draw handler
session.set_busy(True)
job = client.submit("train", dataset=DATASET, checkpoint=FIELD, seconds=120.0)
status_while_starting = session.status_text()
overlay.show(bpy.context.scene.camera.name)
polls_busy = {name: getattr(bpy.ops.sa3d, name).poll() for name in ("import_scene", "train", "segment")}
bpy.ops.wm.read_homefile(app_template="")
try:
    client.wait(job, timeout=60)
    ended = "finished"
except Exception as error:
    ended = type(error).__name__
report({"polls_busy": polls_busy, "busy": session.is_busy(), "overlay": overlay.is_shown(), "ended": ended,
        "status_while_starting": status_while_starting,
        "polls": {name: getattr(bpy.ops.sa3d, name).poll() for name in ("import_scene", "train", "load_field")},
        "field_written": os.path.exists(FIELD)})
"""


def test_loading_another_file_mid_job_cancels_it_and_frees_the_panel(extension_zip, tmp_path, tiny_scene):
    result = run_addon(LOAD_FILE_MID_JOB, extension_zip, tmp_path, DATASET=str(tiny_scene),
                       FIELD=str(tmp_path / "field.pt"))
    assert result["polls_busy"] == {"import_scene": False, "train": False, "segment": False}
    assert result["status_while_starting"] == "Worker: starting (loading torch)..."  # the job was sent without waiting
    assert result["ended"] == "WorkerCancelled" and not result["field_written"]
    assert not result["busy"] and not result["overlay"]
    assert result["polls"] == {"import_scene": True, "train": True, "load_field": True}


def test_file_import_menu_and_drop_handler_import_the_capture(extension_zip, tmp_path, tiny_scene):
    """File > Import > NeRF capture (SA3D) with a chosen transforms.json (what a drop on the 3D View hands over too)."""
    result = run_addon("""
from pathlib import Path
capture = sys.modules[ADDON + ".sa3d_blender.blender.op_import_capture"]
outcome = run(bpy.ops.sa3d.import_capture, filepath=DATASET + "/transforms.json")
handler = bpy.types.FileHandler.bl_rna_get_subclass_py("SA3D_FH_capture")
report({**outcome, "dataset": props.dataset_path, "cameras": len([o for o in scene.objects if "sa3d_view" in o]),
        "handler": [handler.bl_import_operator, handler.bl_file_extensions],
        "colmap": str(capture.dataset_of(Path("/c/sparse/0/cameras.bin"))),
        "missing": run(bpy.ops.sa3d.import_capture, filepath=DATASET + "/nothing.json")["error"]})
""", extension_zip, tmp_path, DATASET=str(tiny_scene))
    assert result["result"] == ["FINISHED"] and result["cameras"] == 24
    assert result["dataset"] == str(tiny_scene / "transforms.json")
    assert result["handler"] == ["sa3d.import_capture", ".json;.npy;.bin;.txt"]
    assert result["colmap"] == "/c/sparse/0"
    assert "nothing.json: file not found" in result["missing"]


UNDO_SEGMENT_AND_EXTRACT = """
import json
props.dataset_path = DATASET
props.field_path = FIELD
bpy.ops.sa3d.import_scene()
bpy.ops.sa3d.load_field()
bpy.ops.ed.undo_push(message="loaded")
props.object_name, props.prompt_view = "duck", PROMPT["view"]
props.prompt_json = json.dumps({"points": PROMPT["points"], "labels": PROMPT["labels"]})
bpy.ops.ed.undo_push(message="clicks")
def state():
    duck = bpy.data.objects.get("duck")
    props = bpy.context.scene.sa3d  # undo replaces the scene: an old reference points at freed data
    return {"objects": [item.name for item in props.objects], "duck_faces": len(duck.data.polygons) if duck else 0,
            "extract_poll": bpy.ops.sa3d.extract.poll(), "pending": props.prompt_json != "",
            "uv_layers": len(duck.data.uv_layers) if duck else 0}
def run_pushed(op):
    outcome = run(op)
    # Blender pushes an undo step after an operator with bl_options UNDO; background bpy.ops calls do not
    bpy.ops.ed.undo_push(message=op.idname())
    return outcome
states = {"segment": (run_pushed(bpy.ops.sa3d.segment), state())}
bpy.data.objects["duck"].name = "renamed by hand"  # Extract Mesh replaces the object: undo must bring this one back
bpy.ops.ed.undo_push(message="rename")
states["extract"] = (run_pushed(bpy.ops.sa3d.extract), state())
bpy.ops.ed.undo()
states["undo extract"] = (None, state())
bpy.ops.ed.undo()
bpy.ops.ed.undo()
states["undo segment"] = (None, state())
bpy.ops.ed.redo()
states["redo segment"] = (None, state())
generation = session.undo_generation()
states["extract again"] = (run(bpy.ops.sa3d.extract), state())
bpy.context.scene.sa3d.photo_texture = False
states["vertex colours"] = (run(bpy.ops.sa3d.extract), state())
undoable = {name: "UNDO" in bpy.types.Operator.bl_rna_get_subclass_py(name).bl_options
            for name in ("SA3D_OT_segment", "SA3D_OT_extract", "SA3D_OT_import_scene")}
report({"undoable": undoable, "undo_steps_seen": generation, **{name: {"outcome": outcome, **after} for name, (outcome, after) in states.items()}})
"""


def test_undo_and_redo_keep_the_panel_list_in_step_with_the_scene(extension_zip, tmp_path, tiny_scene):
    from sa3d_blender.core.data.datasets import load_dataset
    from test_blender_batch import click_prompt
    from test_view_cache import tiny_field_path

    prompt = click_prompt(load_dataset(tiny_scene), "duck")
    result = run_addon(UNDO_SEGMENT_AND_EXTRACT, extension_zip, tmp_path, DATASET=str(tiny_scene),
                       FIELD=str(tiny_field_path(tiny_scene)), PROMPT=prompt)
    assert result["undo_steps_seen"] == 4  # the handler that cancels a job running across an undo was called
    assert result["undoable"] == {"SA3D_OT_segment": True, "SA3D_OT_extract": True, "SA3D_OT_import_scene": True}
    assert result["segment"]["outcome"]["result"] == ["FINISHED"], result["segment"]
    faces = result["segment"]["duck_faces"]
    assert faces > 100 and result["segment"]["objects"] == ["duck"] and not result["segment"]["pending"]
    assert result["extract"]["outcome"]["result"] == ["FINISHED"] and result["extract"]["duck_faces"] == faces
    # undoing Extract Mesh brings back the hand-renamed object (no "duck"), the list keeps the segmented object
    assert result["undo extract"]["objects"] == ["duck"] and result["undo extract"]["duck_faces"] == 0
    # undoing Segment removes the mesh and its list entry together, and gives back the pending clicks
    assert result["undo segment"] == {"outcome": None, "objects": [], "duck_faces": 0, "extract_poll": False,
                                      "pending": True, "uv_layers": 0}
    assert result["redo segment"]["objects"] == ["duck"] and result["redo segment"]["duck_faces"] == faces
    assert result["extract again"]["outcome"]["result"] == ["FINISHED"] and result["extract again"]["duck_faces"] == faces
    # the panel's Photo texture switch: textured by default, vertex colours only when off
    assert result["extract again"]["uv_layers"] == 1 and result["vertex colours"]["uv_layers"] == 0


PREVIEW_MASK = """
import json
overlay = sys.modules[ADDON + ".sa3d_blender.blender.overlay"]
props.dataset_path = DATASET
props.field_path = FIELD
bpy.ops.sa3d.import_scene()
props.object_name, props.prompt_view = "duck", PROMPT["view"]
props.prompt_json = json.dumps({"points": PROMPT["points"], "labels": PROMPT["labels"]})
run(bpy.ops.sa3d.segment)
session.release()  # a new worker holds no 3D mask: Preview Mask segments again from the stored clicks
other = next(o for o in scene.objects if o.get("sa3d_view") == OTHER_VIEW)
bpy.context.view_layer.objects.active = other
outcome = run(bpy.ops.sa3d.preview_mask)
camera, mask = overlay.shown()
np.save(OUT, mask)
report({**outcome, "camera": camera, "scene_camera": scene.camera.name, "other": other.name})
"""


def test_preview_mask_shows_the_mask_segment_writes_from_another_dataset_camera(extension_zip, tmp_path, tiny_scene):
    from sa3d_blender.core.data.datasets import load_dataset
    from sa3d_blender.core.metrics import mask_iou
    from test_blender_batch import click_prompt
    from test_view_cache import tiny_field_path

    dataset = load_dataset(tiny_scene)
    prompt = click_prompt(dataset, "duck")
    other = next(v for v in dataset.test if dataset.cameras.names[v] != prompt["view"])
    result = run_addon("import numpy as np\n" + PREVIEW_MASK, extension_zip, tmp_path, DATASET=str(tiny_scene),
                       FIELD=str(tiny_field_path(tiny_scene)), PROMPT=prompt, OTHER_VIEW=dataset.cameras.names[other],
                       OUT=str(tmp_path / "shown.npy"))
    assert result["result"] == ["FINISHED"], result["error"]
    assert result["camera"] == result["scene_camera"] == result["other"]
    truth = dataset.ground_truth.load_mask(other) == dataset.ground_truth.object("duck").index
    shown = np.load(tmp_path / "shown.npy")
    assert shown.shape == truth.shape
    assert mask_iou(shown, truth) > 0.9  # SAM's outline where it agrees with the 3-D mask, as `segment` writes it


def test_a_textured_mesh_gets_its_uv_map_and_an_srgb_image_material(extension_zip, tmp_path, tiny_scene):
    from sa3d_blender.core.data.image_io import write_png

    npz, png = tmp_path / "mesh.npz", tmp_path / "mesh_texture.png"
    texture = np.zeros((8, 8, 3), dtype=np.uint8)
    texture[:, :4] = (200, 30, 20)  # left half red, right half blue
    texture[:, 4:] = (20, 40, 210)
    write_png(png, texture)
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=np.float32)
    faces = np.array([[0, 1, 2], [1, 3, 2]], dtype=np.int32)
    loop_uv = vertices[faces.ravel(), :2] * 0.5  # the left (red) half of the texture
    np.savez(npz, vertices=vertices, faces=faces, colors=np.full((4, 4), 255, np.uint8), loop_uv=loop_uv,
             texture=np.array(str(png)))
    result = run_addon("""
import numpy as np
mesh_import = sys.modules[ADDON + ".sa3d_blender.blender.mesh_import"]
props.dataset_path = DATASET
bpy.ops.sa3d.import_scene()
space = next(o for o in scene.objects if "sa3d_nerf_space" in o)
obj = mesh_import.import_mesh(scene, "tile", NPZ, space)
obj = mesh_import.import_mesh(scene, "tile", NPZ, space)  # meshed again: replaces material and texture too
uv = np.empty(2 * len(obj.data.loops), dtype=np.float32)
obj.data.uv_layers["UVMap"].data.foreach_get("uv", uv)
nodes = obj.active_material.node_tree.nodes
image_node = next(n for n in nodes if n.bl_idname == "ShaderNodeTexImage")
image = image_node.image
pixels = np.empty(4 * image.size[0] * image.size[1], dtype=np.float32)
image.pixels.foreach_get(pixels)
linked = [l.to_socket.name for l in obj.active_material.node_tree.links if l.from_node == image_node]
bpy.ops.wm.save_as_mainfile(filepath=BLEND)
report({"uv": uv.reshape(-1, 2).round(4).tolist(), "colorspace": image.colorspace_settings.name,
        "packed": image.packed_file is not None, "size": list(image.size), "linked": linked,
        "first_pixel": pixels[:4].round(3).tolist(), "blend": BLEND, "material": obj.active_material.name,
        "materials": [m.name for m in bpy.data.materials if m.name.startswith("SA3D tile")],
        "images": [i.name for i in bpy.data.images if i.name.startswith("tile texture")]})
""", extension_zip, tmp_path, DATASET=str(tiny_scene), NPZ=str(npz), BLEND=str(tmp_path / "tile.blend"))
    np.testing.assert_allclose(result["uv"], loop_uv, atol=1e-4)
    assert result["colorspace"] == "sRGB" and result["packed"] and result["size"] == [8, 8]
    assert result["linked"] == ["Base Color"]
    assert (result["material"], result["materials"], result["images"]) == ("SA3D tile", ["SA3D tile"], ["tile texture"])
    # Blender keeps an sRGB byte image's pixels as stored: the red of the file
    np.testing.assert_allclose(result["first_pixel"][:3], [200 / 255, 30 / 255, 20 / 255], atol=0.01)
