"""The radiance field: the voxel grid, its spaces (box, contraction, NDC), rendering, training, checkpoints."""
