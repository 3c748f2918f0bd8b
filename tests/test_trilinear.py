"""The channels-last gather must equal grid_sample (align_corners=True) in value and gradient."""

import pytest
import torch
import torch.nn.functional as F

from sa3d_blender.core.field.trilinear import GradientPool, corner_indices, gather


def _grid_sample_reference(table, shape, coords):
    grid = table.t().reshape(1, table.shape[1], *shape)
    size = torch.tensor(shape, dtype=coords.dtype) - 1
    norm = (coords / size * 2 - 1).flip(-1).view(1, 1, 1, -1, 3)  # grid_sample wants (x=W, y=H, z=D)
    return F.grid_sample(grid, norm, align_corners=True)[0, :, 0, 0].t()


@pytest.mark.parametrize("channels", [None, 3], ids=["density-table", "colour-table"])
def test_values_and_gradients_match_grid_sample(channels):
    torch.manual_seed(0)
    shape = (5, 7, 4)
    table = torch.randn(5 * 7 * 4, *([channels] if channels else []), requires_grad=True)
    coords = torch.rand(500, 3) * (torch.tensor(shape) - 1)
    coords[:5] = torch.tensor(shape, dtype=torch.float32) - 1  # points on the far faces use the last cell
    index, weights = corner_indices(coords, shape)
    ours = gather(table, index, weights)
    ref_table = table.detach().clone().requires_grad_(True)
    ref = _grid_sample_reference(ref_table.view(len(table), -1), shape, coords).reshape(ours.shape)
    assert torch.allclose(ours, ref, atol=1e-5)
    upstream = torch.randn_like(ours)
    (ours * upstream).sum().backward()
    (ref * upstream).sum().backward()
    assert torch.allclose(table.grad, ref_table.grad, atol=1e-5)


def test_weights_sum_to_one_and_vertices_are_exact():
    shape = (3, 3, 3)
    table = torch.arange(27, dtype=torch.float32)[:, None]
    coords = torch.tensor([[1.0, 2.0, 0.0], [0.5, 0.5, 0.5]])
    index, weights = corner_indices(coords, shape)
    assert torch.allclose(weights.sum(1), torch.ones(2))
    values = gather(table, index, weights)[:, 0]
    assert values[0] == 1 * 9 + 2 * 3 + 0  # a vertex returns its own value
    assert torch.isclose(values[1], torch.tensor((0 + 1) / 2 * 9 + (0 + 1) / 2 * 3 + 0.5))


def test_gradient_of_an_empty_batch_is_zero():
    """A render chunk where no sample reaches the pixel asks for no colours; its backward must still work."""
    table = torch.randn(27, 4, requires_grad=True)
    out = gather(table, torch.zeros(0, 8, dtype=torch.long), torch.zeros(0, 8))
    out.sum().backward()
    assert out.shape == (0, 4) and torch.equal(table.grad, torch.zeros(27, 4))


def test_a_gradient_pool_gives_the_gradient_of_many_lookups_summed_once():
    """Training looks a table up once per window of samples; the pool's single flush must give what autograd's
    per-lookup gradients add up to, for a density and a colour table, on top of a gradient from elsewhere."""
    torch.manual_seed(1)
    shape = (6, 5, 4)
    for channels in (None, 3):
        table = torch.randn(6 * 5 * 4, *([channels] if channels else []), requires_grad=True)
        pooled = table.detach().clone().requires_grad_(True)
        pool = GradientPool()
        for n in (50, 0, 120):  # an empty window too
            coords = torch.rand(n, 3) * (torch.tensor(shape) - 1)
            index, weights = corner_indices(coords, shape)
            upstream = torch.randn(n, *([channels] if channels else []))
            (gather(table, index, weights) * upstream).sum().backward()
            (gather(pooled, index, weights, pool) * upstream).sum().backward()
        assert pooled.grad is None  # nothing reaches .grad before the flush
        (table.square().sum() * 0.1).backward()
        (pooled.square().sum() * 0.1).backward()  # e.g. the TV term's own dense gradient
        pool.flush()
        assert torch.allclose(pooled.grad, table.grad, atol=1e-5)
        pool.flush()  # flushed parts are gone: a second flush adds nothing
        assert torch.allclose(pooled.grad, table.grad, atol=1e-5)


def test_a_pool_that_collected_only_empty_windows_gives_a_zero_gradient_of_the_tables_type():
    """A step whose rays all missed the grid still flushes: its gradient must be float zeros that Adam can take."""
    for channels in (None, 3):
        table = torch.randn(4 * 4 * 4, *([channels] if channels else []), requires_grad=True)
        pool = GradientPool()
        index, weights = corner_indices(torch.zeros(0, 3), (4, 4, 4))
        gather(table, index, weights, pool).sum().backward()
        pool.flush()
        assert table.grad.dtype == table.dtype and table.grad.shape == table.shape and not table.grad.any()
