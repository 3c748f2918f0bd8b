"""MaskGrid's closed form against an explicit SGD(lr=1) + per-voxel running average (the reference's optimiser)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from sa3d_blender.core.segment.mask_grid import MaskGrid, ObjectVotes
from sa3d_blender.core.segment.view_cache import ViewWeights

SHAPE = (4, 5, 3)
H, W = 6, 7


def random_view(rng: np.random.Generator, density: float = 0.1) -> ViewWeights:
    matrix = sp.random(H * W, int(np.prod(SHAPE)), density=density, random_state=rng, format="csr", dtype=np.float32)
    return ViewWeights(matrix, np.ones((H, W), np.float32), np.ones((H, W), np.float32), np.ones((H, W), np.float32))


def reference_sgd(views, masks, lambdas) -> np.ndarray:
    """The reference loop: V *= n; one SGD(lr=1) step on L = -Σ S·M + λ Σ (1-S)·M; n += 1 where V changed; V /= n."""
    n = int(np.prod(SHAPE))
    grid = torch.zeros(n, dtype=torch.float64, requires_grad=True)
    counts = torch.zeros(n, dtype=torch.float64)
    optim = torch.optim.SGD([grid], lr=1.0)
    for view, mask, lam in zip(views, masks, lambdas):
        a = torch.as_tensor(view.matrix.toarray(), dtype=torch.float64)
        s = torch.as_tensor(mask.reshape(-1), dtype=torch.float64)
        with torch.no_grad():
            grid.mul_(counts)
        before = grid.detach().clone()
        rendered = a @ grid
        loss = -(s * rendered).sum() + lam * ((1 - s) * rendered).sum()
        optim.zero_grad()
        loss.backward()
        optim.step()
        with torch.no_grad():
            counts += (grid != before).double()
            grid.div_(counts.clamp_min(1))
    return grid.detach().numpy()


def test_closed_form_equals_explicit_sgd_with_running_average():
    rng = np.random.default_rng(0)
    views = [random_view(rng) for _ in range(5)]
    masks = [rng.random((H, W)) > 0.5 for _ in range(5)]
    lambdas = [5.0, 1.0, 1.0, 1.0, 1.0]
    grid = MaskGrid(SHAPE, other_object_penalty=0.0)
    grid.reset("a")
    for view, mask, lam in zip(views, masks, lambdas):
        grid.add_view("a", view, mask, lam)
    expected = reference_sgd(views, masks, lambdas)
    assert np.count_nonzero(expected) > 20  # the toy problem touches many vertices
    np.testing.assert_allclose(grid.values("a"), expected, rtol=1e-5, atol=1e-6)


def test_visibility_is_what_the_view_that_sees_a_vertex_best_sees_of_it_inside_the_mask_or_not():
    rng = np.random.default_rng(1)
    views = [random_view(rng) for _ in range(3)]
    grid = MaskGrid(SHAPE)
    grid.reset("a")
    for view, mask in zip(views, [rng.random((H, W)) > 0.5 for _ in views]):
        grid.add_view("a", view, mask, 1.0)
    footprints = np.stack([np.asarray(view.matrix.sum(axis=0)).reshape(-1) for view in views])
    np.testing.assert_allclose(grid.visibility("a").reshape(-1), footprints.max(axis=0), rtol=1e-6)


def test_exclusive_gives_each_vertex_to_one_object_and_penalty_pushes_out_the_neighbour():
    # two objects whose SAM masks overlap on half the pixels of one view
    identity = sp.identity(H * W, format="csr", dtype=np.float32)
    view = ViewWeights(sp.hstack([identity, sp.csr_matrix((H * W, int(np.prod(SHAPE)) - H * W))]).tocsr(),
                       np.ones((H, W), np.float32), np.ones((H, W), np.float32), np.ones((H, W), np.float32))
    left = np.zeros((H, W), bool)
    left[:, :4] = True
    right = np.zeros((H, W), bool)
    right[:, 2:] = True
    grid = MaskGrid(SHAPE, other_object_penalty=0.0)
    for name, mask in (("left", left), ("right", right)):
        grid.reset(name)
        grid.add_view(name, view, mask, 1.0)
    overlap = (left & right).reshape(-1)
    shared = grid.masks(exclusive=False)
    assert shared["left"].reshape(-1)[:H * W][overlap].all() and shared["right"].reshape(-1)[:H * W][overlap].all()
    exclusive = grid.masks(exclusive=True)
    assert not (exclusive["left"] & exclusive["right"]).any()

    # with the multi-object term, a vertex both SAM masks claim has V = (1 - 1) / 1 = 0: neither takes it
    grid.other_object_penalty = 1.0
    penalised = grid.masks()
    assert not penalised["left"].reshape(-1)[:H * W][overlap].any()
    assert penalised["left"].reshape(-1)[:H * W][left.reshape(-1) & ~overlap].all()


def _pixel_view() -> ViewWeights:
    identity = sp.identity(H * W, format="csr", dtype=np.float32)
    return ViewWeights(sp.hstack([identity, sp.csr_matrix((H * W, int(np.prod(SHAPE)) - H * W))]).tocsr(),
                       np.ones((H, W), np.float32), np.ones((H, W), np.float32), np.ones((H, W), np.float32))


def test_an_object_inside_another_survives_in_either_order_and_leaves_its_container():
    view = _pixel_view()
    tray = np.zeros((H, W), bool)
    tray[1:5, 1:6] = True  # the tray's SAM mask rightly includes the ball lying in it
    ball = np.zeros((H, W), bool)
    ball[2:4, 2:4] = True
    for order in (("tray", "ball"), ("ball", "tray")):
        grid = MaskGrid(SHAPE, other_object_penalty=1.0)
        for name in order:
            grid.reset(name)
            grid.add_view(name, view, {"tray": tray, "ball": ball}[name], 1.0)
        assert grid.inside("ball", "tray") and not grid.inside("tray", "ball")
        masks = grid.masks()
        pixels = {name: m.reshape(-1)[:H * W].reshape(H, W) for name, m in masks.items()}
        np.testing.assert_array_equal(pixels["ball"], ball)  # not erased by the tray's masks
        np.testing.assert_array_equal(pixels["tray"], tray & ~ball)  # the ball is an object of its own now
        exclusive = {name: m.reshape(-1)[:H * W].reshape(H, W) for name, m in grid.masks(exclusive=True).items()}
        np.testing.assert_array_equal(exclusive["ball"], ball)
        np.testing.assert_array_equal(exclusive["tray"], tray & ~ball)
    alone = MaskGrid(SHAPE)
    alone.reset("tray")
    alone.add_view("tray", view, tray, 1.0)
    np.testing.assert_array_equal(alone.masks()["tray"].reshape(-1)[:H * W].reshape(H, W), tray)  # no ball yet: all of it


def test_what_other_objects_hold_includes_the_unseen_inside_of_one_nested_in_this_one():
    """A ball lying in a tray whose votes reach only its shell (no view sees its core): for the tray, the other
    objects hold the whole ball, core included, so the tray's mesh does not take the core in as its own inside;
    for the ball, they hold the tray without the ball's region (the tray's hole around the ball is where it lies)."""
    shape = (11, 11, 11)
    x, y, z = np.indices(shape)
    r = np.sqrt((x - 5) ** 2 + (y - 5) ** 2 + (z - 5) ** 2)
    tray_region = (z <= 7) & (z >= 1) & (np.abs(x - 5) <= 4) & (np.abs(y - 5) <= 4)
    shell, core = (r <= 3) & (r > 1.5), r <= 1.5
    grid = MaskGrid(shape)
    size = int(np.prod(shape))
    for name, region in (("tray", tray_region & ~core), ("ball", shell)):
        total = np.where(region.reshape(-1), 1.0, -1.0)
        grid.put_votes(name, ObjectVotes(total, np.ones(size, np.int32), np.maximum(total, 0.0),
                                         np.ones(size, np.float32)))
    assert grid.inside("ball", "tray")
    for_tray, for_ball = grid.others("tray"), grid.others("ball")
    assert for_tray[shell].all() and for_tray[core].all() and not for_tray[tray_region & ~shell & ~core].any()
    assert not for_ball[shell | core].any() and for_ball[tray_region & (r > 3)].all()
