"""Blender extension entry: the add-on is the sa3d_blender package, imported lazily because pytest imports this file."""
def register(): from .sa3d_blender import register as run; run()  # noqa: E401,E702
def unregister(): from .sa3d_blender import unregister as run; run()  # noqa: E401,E702
