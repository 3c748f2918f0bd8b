"""Blender layer (bpy only, never torch): scene generator, operators, panels, mesh import.

Nothing is imported here so that `import sa3d_blender.blender` is free; each module imports bpy itself.
"""
