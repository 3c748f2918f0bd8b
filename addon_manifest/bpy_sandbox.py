"""Run a Python snippet with the bpy wheel in a fresh interpreter and a throw-away Blender user folder.

Used by the tests so bpy never shares a process with torch (pytest's) and never touches the real user config.
The snippet calls `report(value)` to hand a JSON-able value back; `run_bpy` returns it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import sysconfig
import textwrap
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARKER = "SA3D-SANDBOX-REPORT "

PROLOGUE = f"""
import json as _json, sys as _sys
import bpy
def report(value):
    print({MARKER!r} + _json.dumps(value), flush=True)
"""

INSTALL_EXTENSION = """
bpy.ops.extensions.package_install_files(filepath=ZIP, repo="user_default", enable_on_install=True)
ADDON = "bl_ext.user_default.sa3d_blender"
"""


# What a stock Blender's Python holds besides the standard library: bpy and what the bpy wheel itself requires (numpy,
# requests, zstandard, cython, and requests' own requirements). No Pillow, scipy, torch, trimesh.
STOCK_ROOT_DISTRIBUTION = "bpy"


class SandboxError(AssertionError):
    """The snippet failed or reported nothing; the message holds its output."""


def run_bpy(
    snippet: str,
    user_dir: Path,
    *,
    variables: dict | None = None,
    env: dict | None = None,
    timeout: float = 180.0,
    python: str | None = None,
    repo_on_path: bool = True,
) -> dict | list | None:
    """Run `snippet` (after `import bpy` and the given variables) and return its last report().

    repo_on_path=False keeps the checkout off sys.path, to prove an installed extension is self-contained."""
    header = "".join(f"{name} = {value!r}\n" for name, value in (variables or {}).items())
    code = PROLOGUE + header + textwrap.dedent(snippet)
    full_env = dict(os.environ, BLENDER_USER_RESOURCES=str(user_dir), **(env or {}))
    full_env.pop("PYTHONPATH", None)
    if repo_on_path:
        full_env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [python or sys.executable, "-c", code],
        cwd=user_dir,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    reports = [line[len(MARKER):] for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if done.returncode != 0 or not reports:
        raise SandboxError(
            f"bpy snippet exited with {done.returncode}\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-6000:]}"
        )
    return json.loads(reports[-1])


def stock_blender_python(cache: Path | None = None) -> str:
    """A Python with only bpy and its own requirements, like Blender's bundled one: a venv (cached, keyed by the
    distributions' versions and the site-packages they come from) whose site-packages links those distributions'
    files from this interpreter's.

    Linking instead of installing keeps CI from downloading the 300 MB bpy wheel twice; keying by the source folder
    means a rebuilt project venv gets a new one instead of links into a deleted folder."""
    wanted = _requirement_closure(STOCK_ROOT_DISTRIBUTION)
    source = Path(sysconfig.get_paths()["purelib"])
    versions = sorted((d.metadata["Name"], d.version) for d in wanted)
    key = hashlib.sha256(repr((versions, str(source))).encode()).hexdigest()[:12]
    cache = cache or Path(os.environ.get("SA3D_CACHE", Path.home() / ".cache" / "sa3d_blender"))
    venv = cache / f"stock-blender-python-{key}"
    python = venv / "bin" / "python"
    if (venv / ".complete").exists():
        return str(python)
    subprocess.run([sys.executable, "-m", "venv", "--clear", "--without-pip", str(venv)], check=True)
    target = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 check=True, capture_output=True, text=True).stdout.strip())
    for dist in wanted:
        for top in {Path(str(f)).parts[0] for f in dist.files or []}:
            if top not in ("..", "__pycache__") and (source / top).exists() and not (target / top).exists():
                (target / top).symlink_to(source / top)
    (venv / ".complete").touch()
    return str(python)


def _requirement_closure(root: str) -> list:
    """The distribution `root` and, recursively, every installed distribution it requires (extras left out)."""
    seen: dict[str, metadata.Distribution] = {}
    todo = [root]
    while todo:
        name = re.split(r"[\s;<>=!~\[(]", todo.pop(), maxsplit=1)[0].lower().replace("_", "-")
        if name in seen:
            continue
        dist = metadata.distribution(name)
        seen[name] = dist
        todo += [r for r in dist.requires or [] if "extra ==" not in r]
    return list(seen.values())
