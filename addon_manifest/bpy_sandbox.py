"""Run a Python snippet with the bpy wheel in a fresh interpreter and a throw-away Blender user folder.

Used by the tests so bpy never shares a process with torch (pytest's) and never touches the real user config.
The snippet calls `report(value)` to hand a JSON-able value back; `run_bpy` returns it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
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
