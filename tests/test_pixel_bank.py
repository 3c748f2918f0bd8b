"""Training rays are generated per batch from (view, pixel) indices: the same rays and colours as rendering the whole
view, at 3 bytes per training pixel."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from sa3d_blender.core.data.cameras import Cameras
from sa3d_blender.core.field.training import PixelBank


def test_batches_match_the_full_view_rays_and_colours():
    rng = np.random.default_rng(0)
    sizes = [(40, 30), (24, 18), (40, 30)]
    c2w = np.repeat(np.eye(4)[None], 3, axis=0)
    c2w[:, :3, 3] = rng.normal(size=(3, 3))
    cameras = Cameras(c2w=c2w, fx=[50.0, 30, 52], fy=[50.0, 30, 51], cx=[20.0, 12, 19.5], cy=[15.0, 9, 15.5],
                      width=[w for w, _ in sizes], height=[h for _, h in sizes], names=["a", "b", "c"],
                      image_paths=[None] * 3, distortion=[[0.05, -0.01, 0, 0, 0.001, 0]] * 3)
    images = [rng.integers(0, 256, size=(h, w, 3)).astype(np.float32) / 255 for w, h in sizes]
    dataset = SimpleNamespace(cameras=cameras, load_image=lambda i: images[i])
    bank = PixelBank(dataset, [2, 0], "cpu")  # views 2 then 0 are the training views
    assert len(bank) == 2 * 40 * 30 and bank.colors.dtype == torch.uint8
    pick = torch.tensor([0, 5, 1199, 1200, 1200 + 41, 2399])
    origins, dirs, colors, view = bank.batch(pick)
    assert view.tolist() == [0, 0, 0, 1, 1, 1]
    for k, p in enumerate(pick.tolist()):
        i = [2, 0][view[k]]
        local = p - (0 if view[k] == 0 else 1200)
        o, d = cameras.pixel_rays(i)
        np.testing.assert_allclose(origins[k].numpy(), o[local], atol=1e-6)
        np.testing.assert_allclose(dirs[k].numpy(), d[local], atol=1e-6)
        np.testing.assert_allclose(colors[k].numpy(), images[i].reshape(-1, 3)[local], atol=1e-6)
