"""edge.inspect.frames: the zoomed crop that names a defect (two stages): its size, its limits, inside the frame."""

from __future__ import annotations

import pytest

from edge.inspect.frames import NAME_WINDOW, ZOOM_RANGE, zoom_box


def test_the_window_is_the_frame_shape_and_name_window_times_the_box() -> None:
    x, y, w, h = zoom_box((300, 200, 100, 50), 640, 480)
    assert w == pytest.approx(NAME_WINDOW * 100, abs=1) and abs(w / h - 640 / 480) < 0.02
    assert x <= 300 and x + w >= 400 and y <= 200 and y + h >= 250  # the whole box is in view


@pytest.mark.parametrize("box", [(0, 0, 4, 4), (636, 476, 4, 4), (320, 240, 1, 1)])
def test_a_tiny_box_is_zoomed_at_most_as_far_as_the_towers_know_and_stays_inside(box: tuple[int, int, int, int]
                                                                                 ) -> None:
    x, y, w, h = zoom_box(box, 640, 480)
    assert (w, h) == (int(640 / ZOOM_RANGE[1]), int(480 / ZOOM_RANGE[1]))
    assert 0 <= x <= 640 - w and 0 <= y <= 480 - h


def test_a_box_as_large_as_the_frame_gives_the_whole_frame() -> None:
    assert zoom_box((0, 0, 640, 480), 640, 480) == (0, 0, 640, 480)
