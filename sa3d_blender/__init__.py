"""sa3d_blender: segment objects out of a NeRF capture (SA3D + SAM) and bring them into Blender as meshes.

bpy is imported only inside register()/unregister(), so the core and the worker import this package without Blender.
"""

__version__ = "0.1.0"


def register():
    from .blender import registration

    registration.register()


def unregister():
    from .blender import registration

    registration.unregister()
