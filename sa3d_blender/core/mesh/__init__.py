"""Objects out: marching cubes, the support-plane cut and the exported coloured mesh."""
