"""The pure box and extent rules of segmentation.locate."""

import math

import numpy as np
import pytest

from imaging.volume import Volume
from segmentation.locate import (CORD_RADIUS_MM, CordBox, LocatorConfig, cord_path,
                                 end_gaps_mm, grown_box, min_cord_length_mm)


@pytest.fixture
def grid() -> Volume:
    """50 x 40 x 30 voxels of 1 x 1 x 2 mm (RAS)."""
    return Volume(np.zeros((50, 40, 30), np.float32), np.diag([1.0, 1.0, 2.0, 1.0]))


def test_box_grows_only_on_the_sides_the_cord_touches(grid):
    box = CordBox((10, 10, 0), (20, 20, 30))
    cord = np.zeros(box.shape, bool)
    cord[0, 4:6, :] = True                                   # touches the low x side only
    grown = grown_box(box, cord, grid, (3.0, 3.0, math.inf))
    assert grown == CordBox((7, 10, 0), (20, 20, 30))


def test_box_does_not_grow_past_the_field_of_view(grid):
    box = CordBox((1, 38, 0), (10, 40, 30))
    cord = np.ones(box.shape, bool)
    grown = grown_box(box, cord, grid, (5.0, 5.0, math.inf))
    assert grown == CordBox((0, 33, 0), (15, 40, 30))        # y already at the edge above
    inside = np.zeros(box.shape, bool)
    inside[2:4, :1, 5:10] = True
    assert grown_box(box, inside, grid, (5.0, 5.0, math.inf)) == CordBox((1, 33, 0), (10, 40, 30))
    assert grown_box(box, np.zeros(box.shape, bool), grid, (5.0, 5.0, 5.0)) == box


def test_end_gaps_are_measured_on_the_whole_view(grid):
    box = CordBox((0, 0, 5), (50, 40, 25))
    cord = np.zeros(box.shape, bool)
    cord[20, 20, 2:15] = True                                # slices 7..19 of 30
    assert end_gaps_mm(cord, box, grid) == (14.0, 20.0)
    assert end_gaps_mm(np.zeros(box.shape, bool), box, grid) == (60.0, 60.0)


def test_shortest_cord_is_capped_by_the_view(grid):
    assert min_cord_length_mm(grid, LocatorConfig()) == 36.0           # 0.6 x 60 mm
    tall = Volume(np.zeros((4, 4, 100), np.float32), np.diag([1.0, 1.0, 2.0, 1.0]))
    assert min_cord_length_mm(tall, LocatorConfig()) == 40.0


def test_path_follows_the_cord_between_and_beyond_the_stretches_the_locator_marked():
    spacing = (2.0, 2.0, 2.0)
    region = np.zeros((30, 30, 40), bool)
    region[10, 8, 5:10] = True            # marked low down at y = 8 ...
    region[10, 20, 25:30] = True          # ... and higher up at y = 20
    path = cord_path(region, spacing)
    assert path[region].all()
    # between the stretches the path runs from y = 8 to y = 20: at z = 17 it is near y = 14
    assert path[10, 14, 17] and not path[10, 8, 17] and not path[10, 20, 17]
    # beyond them it stays where the last stretch was, for the whole height of the view
    assert path[10, 8, 0] and path[10, 20, 39]
    across = np.flatnonzero(path[10, :, 17])
    radius_voxels = CORD_RADIUS_MM / spacing[1]
    assert across.size == pytest.approx(2 * radius_voxels + 1, abs=1)
    # nothing marked: nothing to follow
    assert not cord_path(np.zeros_like(region), spacing).any()
