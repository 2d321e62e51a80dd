"""Survival curves, cells -> volume, and what the labels do when cells die or divide."""

from __future__ import annotations

import dataclasses
import math

import pytest

from imaging.phantom import sample_spec
from imaging.phantom.graft import graft_state, surviving_fraction


@pytest.fixture
def graft(rng):
    return dataclasses.replace(sample_spec(rng, label="spio", survival="decay").graft,
                               plateau=0.3, tau_days=10.0, injected_cells=2.0e6,
                               packing_density_cells_per_mm3=2.0e5)


def test_decay_follows_the_curve_and_volume_follows_cells(graft):
    for days in (0.0, 3.0, 28.0, 364.0):
        state = graft_state(graft, days)
        expected = 0.3 + 0.7 * math.exp(-days / 10.0)
        assert state.surviving_fraction == pytest.approx(expected, abs=1e-6)
        assert state.surviving_cells == round(2.0e6 * expected)
        assert state.volume_mm3 == pytest.approx(state.surviving_cells / 2.0e5)
    assert graft_state(graft, -3.0).surviving_fraction is None
    assert graft_state(graft, -3.0).volume_mm3 == 0


def test_total_loss_and_overgrowth(graft):
    lost = dataclasses.replace(graft, survival_model="total_loss", plateau=0.0)
    assert graft_state(lost, 364.0).surviving_cells == 0
    grow = dataclasses.replace(graft, survival_model="overgrowth", doubling_days=100.0)
    f60 = surviving_fraction(grow, 60.0)
    assert surviving_fraction(grow, 260.0) == pytest.approx(4 * f60)
    assert graft_state(grow, 260.0).volume_mm3 > graft_state(grow, 60.0).volume_mm3


def test_iron_of_dead_cells_lingers_and_clears_with_its_half_life(graft):
    lost = dataclasses.replace(graft, survival_model="total_loss", plateau=0.0, tau_days=3.0,
                               iron_pg_per_cell=20.0, iron_half_life_days=100.0)
    injected_ug = 2.0e6 * 20.0 / 1e6
    day1, day100, day200 = (graft_state(lost, d) for d in (1.0, 101.0, 201.0))
    assert day1.iron_ug == pytest.approx(injected_ug, rel=0.02)   # nothing cleared yet
    assert day100.surviving_cells < 1 and day100.living_iron_ug < 1e-6
    # released within days, then halved every 100 days: the void outlives the cells
    assert day100.iron_ug == pytest.approx(injected_ug / 2 * 2 ** (1 / 100 * 3.0), rel=0.05)
    assert day200.iron_ug / day100.iron_ug == pytest.approx(0.5, rel=0.02)


def test_dividing_cells_dilute_the_label(graft):
    grow = dataclasses.replace(graft, survival_model="overgrowth", doubling_days=100.0,
                               label="19f")
    early, late = graft_state(grow, 60.0), graft_state(grow, 260.0)
    assert late.surviving_cells > 3 * early.surviving_cells
    assert late.fluorine_atoms == pytest.approx(early.fluorine_atoms, rel=1e-3)
    assert early.fluorine_atoms == pytest.approx(
        early.surviving_cells * grow.fluorine_atoms_per_cell, rel=1e-3)
