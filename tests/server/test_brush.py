"""Brush rasterisation and how strokes and clicks combine."""
from __future__ import annotations

import numpy as np
import pytest

from clicksam.server.brush import apply_overrides, override_layer, paint, stroke_pixels
from clicksam.server.steps import Action, Stroke, current_steps, Reset


def _brute_force(points, radius, shape):
    """Distance of every pixel centre to every segment, written out point by point."""
    covered = np.zeros(shape, bool)
    path = points if len(points) > 1 else [points[0], points[0]]
    for row in range(shape[0]):
        for col in range(shape[1]):
            cx, cy = col + 0.5, row + 0.5
            for (ax, ay), (bx, by) in zip(path, path[1:]):
                vx, vy = bx - ax, by - ay
                length2 = vx * vx + vy * vy
                t = 0.0 if length2 == 0 else min(max(((cx - ax) * vx + (cy - ay) * vy) / length2, 0.0), 1.0)
                if (cx - ax - t * vx) ** 2 + (cy - ay - t * vy) ** 2 <= radius * radius:
                    covered[row, col] = True
    return covered


@pytest.mark.parametrize("points, radius", [
    ([(10.3, 7.7)], 3.2),
    ([(2.1, 3.4), (25.6, 18.2)], 1.7),
    ([(5.0, 5.0), (20.0, 5.0), (20.0, 15.0), (3.3, 17.9)], 2.5),
    ([(-3.0, 4.0), (12.0, -2.0)], 4.0),  # partly outside the image
    ([(7.5, 7.5)], 0.5),  # the smallest brush: the pixel under the point
])
def test_stroke_pixels_match_the_rule(points, radius):
    shape = (20, 30)
    np.testing.assert_array_equal(stroke_pixels(points, radius, shape), _brute_force(points, radius, shape))
    assert stroke_pixels([(7.5, 7.5)], 0.5, shape).sum() == 1


def test_paint_and_erase():
    mask = np.zeros((10, 10), bool)
    painted = paint(mask, Stroke("paint", 1.5, ((2.0, 2.0), (7.0, 2.0))))
    assert painted[1:3, 2:7].all() and not painted[6:].any()
    erased = paint(painted, Stroke("erase", 0.5, ((4.5, 1.5), (4.5, 2.5))))
    assert not erased[1, 4] and not erased[2, 4] and erased[2, 3] and (painted & ~erased).sum() == 2


def test_clicks_keep_painted_pixels_unless_clicked_on():
    shape = (12, 20)
    left = Stroke("paint", 1.0, ((2.5, 2.5), (5.5, 2.5)))
    right = Stroke("paint", 1.0, ((14.5, 2.5), (17.5, 2.5)))
    hole = Stroke("erase", 1.5, ((10.5, 8.5),))
    steps = [left, right, hole, Action("click", 10, 10, True)]
    layer = override_layer(steps, shape)
    model = np.zeros(shape, bool)
    model[6:12, 6:16] = True  # the model's mask after the click
    shown = apply_overrides(model, layer)
    assert shown[2, 3] and shown[2, 16] and not shown[8, 10] and shown[10, 10]
    released = override_layer(steps + [Action("click", 15.2, 2.9, False)], shape)  # on the right stroke
    assert (released == 1).sum() == (layer == 1).sum() // 2 and released[2, 3] == 1 and released[2, 16] == 0
    released = override_layer(steps + [Action("click", 10.9, 8.1, True)], shape)  # in the erased hole
    assert released.min() == 0 and apply_overrides(model, released)[8, 10]
    assert override_layer([Action("box", box=(0, 0, 5, 5)), Action("click", 3, 3)], shape) is None


def test_later_strokes_win_and_reset_starts_over():
    shape = (8, 8)
    paint_then_erase = [Stroke("paint", 2.0, ((4.0, 4.0),)), Stroke("erase", 1.0, ((4.0, 4.0),))]
    layer = override_layer(paint_then_erase, shape)
    assert layer[3, 3] == -1 and layer[4, 5] == 1
    steps = [*paint_then_erase, Reset(), Action("click", 1, 1)]
    assert current_steps(steps) == [Action("click", 1, 1)] and override_layer(current_steps(steps), shape) is None
