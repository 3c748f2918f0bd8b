"""Captures in: dataset formats (transforms.json, LLFF, COLMAP), cameras and lenses, images, ground truth."""
