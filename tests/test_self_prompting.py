"""Self-prompting on a synthetic view: points inside the object, spread out, and never on a far-away look-alike."""

from __future__ import annotations

import numpy as np

from sa3d_blender.core.segment.self_prompting import (PromptSettings, binarise_rendered, choose_prompts,
                                                     exclusion_half_size, pieces_near, prompt_box)

H = W = 64


def synthetic_view():
    """A disc (the object, 3-D points near z=0) and a blob with a spurious score of the same height far away (z=5)."""
    rows, cols = np.mgrid[0:H, 0:W] + 0.5
    disc = (cols - 20) ** 2 + (rows - 32) ** 2 < 12**2
    blob = (cols - 52) ** 2 + (rows - 12) ** 2 < 5**2
    score = np.where(disc, 1.0 - 0.3 * np.hypot(cols - 20, rows - 32) / 12, -0.2)
    score[blob] = 0.9
    points = np.stack([cols / W, rows / H, np.where(blob, 5.0, 0.0)], axis=-1)
    opacity = np.ones((H, W))
    return score, points, opacity, disc, blob


def test_points_are_inside_the_object_spread_out_and_avoid_the_far_blob():
    score, points, opacity, disc, blob = synthetic_view()
    prompts = choose_prompts(score, points, opacity, PromptSettings(max_points=4))
    assert prompts is not None and len(prompts.points) == 4 and (prompts.labels == 1).all()
    cols, rows = prompts.points[:, 0].astype(int), prompts.points[:, 1].astype(int)
    assert disc[rows, cols].all() and not blob[rows, cols].any()
    assert abs(cols[0] - 20) <= 1 and abs(rows[0] - 32) <= 1  # the most confident pixel first
    half = exclusion_half_size(score)
    gaps = [max(abs(cols[a] - cols[b]), abs(rows[a] - rows[b])) for a in range(4) for b in range(a)]
    assert min(gaps) > half


def test_flat_distance_proxy_would_jump_to_the_blob_but_3d_distance_does_not():
    score, points, opacity, disc, blob = synthetic_view()
    flat = points.copy()
    flat[..., 2] = 0.0  # what a depth-blind proxy sees: the blob is as close as the disc's far side
    many = PromptSettings(max_points=12, distance_scale=4.0)
    chosen_flat = choose_prompts(score, flat, opacity, many)
    chosen_3d = choose_prompts(score, points, opacity, many)
    on_blob = lambda p: blob[p.points[:, 1].astype(int), p.points[:, 0].astype(int)].any()
    assert on_blob(chosen_flat)
    assert not on_blob(chosen_3d)


def test_no_prompt_when_the_rendered_mask_has_no_positive_pixel():
    score, points, opacity, _, _ = synthetic_view()
    assert choose_prompts(np.full((H, W), -0.5), points, opacity) is None
    # positive score only where the field is transparent does not count either
    assert choose_prompts(score, points, np.zeros((H, W))) is None


def test_negative_points_lie_outside_the_object_where_the_render_says_background():
    score, points, opacity, disc, _ = synthetic_view()
    prompts = choose_prompts(score, points, opacity, PromptSettings(max_points=2, negative_points=2))
    negatives = prompts.points[prompts.labels == 0].astype(int)
    assert len(negatives) == 2
    assert not disc[negatives[:, 1], negatives[:, 0]].any()
    assert (score[negatives[:, 1], negatives[:, 0]] < 0).all()


def test_binarisation_is_the_reference_rule():
    score = np.array([[-1.0, 0.1, 0.2], [0.9, 1.0, 0.0]])
    assert binarise_rendered(score).tolist() == [[False, False, False], [True, True, False]]


def test_the_box_holds_the_rendered_mask_with_its_margin_and_ignores_a_stray_speck():
    rendered = np.zeros((H, W), dtype=bool)
    rendered[20:40, 10:30] = True  # 20 x 20 px
    rendered[60, 60] = True  # a speck far away: must not stretch the box to the corner
    x0, y0, x1, y1 = prompt_box(rendered, margin=0.1)
    assert (x0, y0, x1, y1) == (8.0, 18.0, 32.0, 42.0)
    assert prompt_box(np.zeros((H, W), dtype=bool), 0.1) is None
    # clipped at the image border
    assert prompt_box(np.ones((H, W), dtype=bool), 0.5).tolist() == [0.0, 0.0, W, H]


def test_outline_pieces_away_from_the_rendered_mask_are_dropped():
    rendered = np.zeros((H, W), dtype=bool)
    rendered[20:40, 10:30] = True
    outline = np.zeros((H, W), dtype=bool)
    outline[19:41, 9:31] = True  # the object's edge, a pixel wider than the render
    tip = np.zeros((H, W), dtype=bool)
    tip[22:26, 32:34] = True  # a frond tip 3 px beyond the render: part of the edge
    outline |= tip
    outline[50:53, 50:53] = True  # specks on the background behind the object
    outline[5, 60] = True
    kept = pieces_near(outline, rendered, reach=3)
    expected = outline.copy()
    expected[50:53, 50:53] = expected[5, 60] = False
    assert np.array_equal(kept, expected)
    assert np.array_equal(pieces_near(outline, rendered, reach=0), expected & ~tip)



def test_the_part_of_a_mask_beyond_a_depth_jump_from_the_clicks_is_found():
    from sa3d_blender.core.segment.depth_regions import clicked_surface

    surface = np.full((H, W), np.inf, dtype=np.float32)
    rows, cols = np.mgrid[0:H, 0:W]
    ball = (cols - 30) ** 2 + (rows - 40) ** 2 < 12 ** 2
    cone = (np.abs(cols - 30) < 8) & (rows > 10) & (rows < 34) & ~ball  # sticks out above the ball, farther away
    surface[cone] = 1.3
    surface[ball] = 1.0 + 0.002 * np.abs(cols - 30)[ball]  # a curved front: small steps between neighbours
    clicks = np.array([[30.5, 40.5], [24.5, 44.5]])
    assert np.array_equal(clicked_surface(ball, surface, clicks), ball)
    # from the ball: the ball, and the cone's row of edge pixels along it, which the ball's outline keeps
    reached = clicked_surface(ball | cone, surface, clicks)
    assert ball.sum() <= reached.sum() < ball.sum() + 16 and (reached & ball).sum() == ball.sum()
    # the cone alone is beyond the jump from clicks on the ball; a click on the cone reaches it, not the ball
    assert not clicked_surface(cone, surface, clicks).any()
    from_cone = clicked_surface(ball | cone, surface, np.array([[30.5, 20.5]]))
    assert np.array_equal(from_cone & cone, cone) and (from_cone & ball).sum() < 16
