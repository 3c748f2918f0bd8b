"""The density TV term: over all vertices it equals the dense definition (neighbour differences from every occupied
vertex, mean per axis); the per-iteration estimate from random vertices is unbiased."""

import numpy as np
import torch

from sa3d_blender.core.field.training import density_total_variation
from sa3d_blender.core.field.voxel_field import FieldConfig, VoxelField


def test_tv_matches_the_dense_definition_and_its_estimate_is_unbiased():
    shape = (5, 6, 7)
    field = VoxelField(np.array([[0.0, 0, 0], [1, 1, 1]]), shape, FieldConfig())
    rng = np.random.default_rng(0)
    with torch.no_grad():
        field.density.copy_(torch.as_tensor(rng.normal(size=int(np.prod(shape))), dtype=torch.float32))
    field.set_occupancy(torch.as_tensor(rng.random(int(np.prod(shape))) < 0.4))
    grid = field.density.detach().view(shape).numpy()
    occupied = field.occupancy.view(shape).numpy()
    expected = 0.0
    for axis in range(3):
        diff = np.diff(grid, axis=axis) ** 2
        mask = np.take(occupied, range(shape[axis] - 1), axis=axis)
        expected += diff[mask].mean()
    assert np.isclose(float(density_total_variation(field, samples=None).detach()), expected, rtol=1e-5)
    # the per-iteration estimate from random vertices is unbiased
    estimates = [float(density_total_variation(field, samples=64).detach()) for _ in range(400)]
    assert abs(np.mean(estimates) - expected) < 0.05 * expected
