"""Build the extension zip and validate it with Blender's own blender_ext.py (shipped inside the bpy wheel).

Usage: python addon_manifest/build.py --out DIR   -> prints the path of the validated zip.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "blender_manifest.toml"

log = logging.getLogger(__name__)


class BuildError(RuntimeError):
    """blender_ext.py rejected the manifest or the zip; the message holds its output."""


def bpy_scripts_dir() -> Path:
    """`bpy/<version>/scripts` of the installed bpy wheel, found without importing bpy (which takes a second)."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("the bpy wheel is not installed in this Python; blender_ext.py ships inside it")
    package = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(package.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise BuildError(f"{package}: no */scripts/addons_core/bl_pkg/cli/blender_ext.py in the bpy wheel")
    return found[-1].parents[3]


def blender_ext(*args: str | Path) -> str:
    """Run Blender's extension tool with the wheel's tag list, so tags are checked as `blender --command` does."""
    scripts = bpy_scripts_dir()
    command = [sys.executable, str(scripts / "addons_core/bl_pkg/cli/blender_ext.py"), *map(str, args)]
    command.append(f"--valid-tags={scripts / 'modules/_bpy_internal/extensions/tags.py'}")
    done = subprocess.run(command, capture_output=True, text=True)
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        raise BuildError(f"blender_ext.py {args[0]} failed ({done.returncode}):\n{output}")
    log.debug("%s", output)
    return output


def zip_name() -> str:
    manifest = tomllib.loads(MANIFEST.read_text(encoding="utf-8"))
    return f"{manifest['id']}-{manifest['version']}.zip"


def build_extension(out_dir: str | Path) -> Path:
    """Validate the source tree, build `<id>-<version>.zip` into out_dir (atomically), validate the zip; its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / zip_name()
    partial = out_dir / f".{target.name}.partial.zip"
    blender_ext("validate", REPO)
    try:
        blender_ext("build", "--source-dir", REPO, "--output-filepath", partial)
        blender_ext("validate", partial)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="folder for the zip (default: dist/)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        print(build_extension(args.out))
    except BuildError as error:
        log.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
