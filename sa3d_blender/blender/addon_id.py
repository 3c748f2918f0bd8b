"""The add-on's module name, which AddonPreferences and context.preferences.addons are keyed by.

As an extension this package is `bl_ext.<repo>.sa3d_blender.sa3d_blender` (the manifest sits one level up, next to a
root shim), so the add-on is the parent; imported directly (tests, batch) the add-on is `sa3d_blender` itself.
"""

_package = __package__.rsplit(".", 1)[0]  # drop ".blender"
ADDON_ID = _package.rsplit(".", 1)[0] if _package.startswith("bl_ext.") else _package
