"""The extension zip: built and validated by Blender's blender_ext.py, installed and enabled in a throw-away user folder,
registered (panel, operators, scene settings) and unregistered without leaving handlers, timers or a worker behind."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from addon_manifest.bpy_sandbox import INSTALL_EXTENSION, REPO, run_bpy, stock_blender_python
from addon_manifest.build import build_extension
from sa3d_blender.core.data.datasets import load_dataset


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory):
    return build_extension(tmp_path_factory.mktemp("dist"))


def test_zip_holds_the_add_on_and_nothing_of_the_dev_tree(extension_zip):
    names = zipfile.ZipFile(extension_zip).namelist()
    assert extension_zip.name == "sa3d_blender-0.1.0.zip"
    assert {"blender_manifest.toml", "__init__.py", "sa3d_blender/blender/registration.py",
            "sa3d_blender/worker/client.py", "sa3d_blender/core/data/cameras.py"} <= set(names)
    leaked = [n for n in names if n.split("/")[0] in ("tests", "scripts", "addon_manifest") or "__pycache__" in n
              or any(part.startswith(".") for part in n.split("/"))]
    assert leaked == []
    # the generator, evaluation and the CLI are development tools: not shipped (the stock-Blender test below shows
    # the add-on and its worker run without them)
    tooling = [n for n in names if n.startswith(("sa3d_blender/cli/", "sa3d_blender/blender/scene_"))
               or n in ("sa3d_blender/core/evaluation.py", "sa3d_blender/__main__.py")]
    assert tooling == []
    assert "sa3d_blender/worker/requirements.txt" in names  # what Set Up Worker installs


def test_build_command_prints_the_zip_path(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "addon_manifest" / "build.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "sa3d_blender-0.1.0.zip")


INSTALL_SNIPPET = """
def handler_counts():
    return {name: len(getattr(bpy.app.handlers, name)) for name in dir(bpy.app.handlers)
            if isinstance(getattr(bpy.app.handlers, name), list)}

before = handler_counts()  # Blender's own, before the extension adds its load_post handler
""" + INSTALL_EXTENSION + """
import os, sys, signal

def children():
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                found.append(int(entry))
    return found

enabled = ADDON in bpy.context.preferences.addons
registered = {
    "load_post_handler": handler_counts()["load_post"] == before["load_post"] + 1,
    "panel": hasattr(bpy.types, "SA3D_PT_main"),
    "operators": sorted(dir(bpy.ops.sa3d)),
    "scene_settings": hasattr(bpy.context.scene, "sa3d"),
    "preferences": bpy.context.preferences.addons[ADDON].preferences is not None,
}
session = sys.modules[ADDON + ".sa3d_blender.blender.worker_session"]
prefs = sys.modules[ADDON + ".sa3d_blender.blender.preferences"]
client = session.client(prefs.worker_settings(bpy.context))
worker_pid = client.call("ping")["pid"]
with_worker = children()
bpy.ops.preferences.addon_disable(module=ADDON)
after = handler_counts()
report({
    "enabled": enabled, "registered": registered, "worker_was_child": worker_pid in with_worker,
    "children_after": children(), "handlers_before": before, "handlers_after": after,
    "panel_after": hasattr(bpy.types, "SA3D_PT_main"), "scene_settings_after": hasattr(bpy.types.Scene, "sa3d"),
    "operators_after": sorted(dir(bpy.ops.sa3d)),
})
"""


def test_zip_installs_enables_registers_and_unregisters_cleanly(extension_zip, tmp_path):
    # the process must also EXIT: a leaked bpy.app.timers timer makes the bpy module hang at exit (timeout fails)
    result = run_bpy(INSTALL_SNIPPET, tmp_path, variables={"ZIP": str(extension_zip)}, env={"SA3D_THREADS": "1"},
                     repo_on_path=False, timeout=150)
    assert result["enabled"]
    assert result["registered"]["panel"] and result["registered"]["scene_settings"] and result["registered"]["preferences"]
    assert result["registered"]["load_post_handler"]
    assert {"import_scene", "train", "load_field", "click_prompt", "segment", "extract", "cancel_job",
            "release_worker", "setup_worker", "cancel_setup"} <= set(result["registered"]["operators"])
    assert result["worker_was_child"]
    assert result["children_after"] == []
    assert result["handlers_after"] == result["handlers_before"]
    assert not result["panel_after"] and not result["scene_settings_after"]
    assert result["operators_after"] == []


STOCK_SNIPPET = INSTALL_EXTENSION + """
enabled = ADDON in bpy.context.preferences.addons
operators = sorted(dir(bpy.ops.sa3d))
bpy.context.preferences.addons[ADDON].preferences.worker_python = WORKER
bpy.context.scene.sa3d.dataset_path = DATASET
bpy.ops.sa3d.import_scene()
session = sys.modules[ADDON + ".sa3d_blender.blender.worker_session"]
worker_status = session.status_text()
cameras = [o for o in bpy.context.scene.objects if o.type == "CAMERA" and "sa3d_view" in o]
prompt_view = bpy.context.scene.sa3d.prompt_view
heavy = sorted(m for m in ("PIL", "scipy", "torch", "trimesh", "skimage", "pycolmap") if m in sys.modules)
bpy.ops.preferences.addon_disable(module=ADDON)
report({"enabled": enabled, "operators": operators, "cameras": sorted(o["sa3d_view"] for o in cameras),
        "prompt_view": prompt_view, "heavy_modules": heavy, "worker_status": worker_status})
"""


def test_zip_enables_in_a_stock_blender_python_and_imports_cameras_through_the_worker(extension_zip, tiny_scene,
                                                                                       tmp_path):
    """Blender's own Python has bpy, numpy, requests, zstandard, cython and nothing else: enabling the extension and
    importing a capture must not need Pillow, scipy or torch there (the worker, in the project's venv, reads it)."""
    stock = stock_blender_python()
    result = run_bpy("import sys\n" + STOCK_SNIPPET, tmp_path, python=stock, repo_on_path=False, timeout=240,
                     variables={"ZIP": str(extension_zip), "WORKER": sys.executable, "DATASET": str(tiny_scene)},
                     env={"SA3D_THREADS": "1"})
    assert result["enabled"] and "import_scene" in result["operators"]
    expected = load_dataset(tiny_scene).cameras.names
    assert result["cameras"] == sorted(expected) and result["prompt_view"] == expected[0]
    assert result["heavy_modules"] == []
    assert result["worker_status"].startswith("Worker: cpu, torch 2.14.1")  # the panel says where torch runs
