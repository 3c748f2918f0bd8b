"""SAM and SA3D: segmenters, cached views, self-prompting, the 3D mask grid, prompt files."""
