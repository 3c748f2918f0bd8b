"""Science layer: datasets, cameras, radiance field, segmenters, SA3D, meshes, metrics. numpy/torch only, never bpy."""
