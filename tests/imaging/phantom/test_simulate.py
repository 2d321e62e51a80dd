"""Simulated subjects: truth volumes match the masks, curves match, grids and contrasts right."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from imaging.phantom import sample_spec, simulate_subject
from imaging.phantom.graft import GraftState, graft_state, surviving_fraction
from imaging.phantom.injury import injury_state
from imaging.phantom.render import Textures, render_session
from imaging.volume import LabelVolume


@pytest.fixture(scope="module")
def subjects():
    out = {}
    for i, label in enumerate(("none", "spio", "19f")):
        rng = np.random.default_rng(100 + i)
        spec = sample_spec(rng, label=label, plane="sagittal", survival="decay", n_sessions=3)
        out[label] = simulate_subject(spec, rng, subject_id=f"sub-{label}")
    return out


@pytest.fixture(scope="module")
def research_subject():
    rng = np.random.default_rng(7)
    spec = sample_spec(rng, label="none", resolution="research", plane="sagittal",
                       survival="decay", n_sessions=2)
    big = dataclasses.replace(spec.graft, injected_cells=5.0e6, packing_density_cells_per_mm3=1.2e5,
                              plateau=0.6, tau_days=30.0)
    return simulate_subject(dataclasses.replace(spec, graft=big), rng)


def _sessions(subjects):
    return [s for sub in subjects.values() for s in sub.sessions]


def test_partial_volume_sum_equals_truth_volume_within_one_percent(subjects):
    checked = 0
    for s in _sessions(subjects):
        summed = float(s.graft_probseg.array.sum()) * s.graft_probseg.voxel_volume_mm3
        if s.truth.graft_volume_mm3 == 0:
            assert summed == 0
            continue
        assert summed == pytest.approx(s.truth.graft_volume_mm3, rel=0.01)
        checked += 1
    assert checked >= 4


def test_majority_voxel_count_approximates_truth_at_research_resolution(research_subject):
    s = research_subject.sessions[1]
    counted = float((s.dseg.array == 3).sum()) * s.dseg.voxel_volume_mm3
    assert s.truth.graft_volume_mm3 > 30
    assert counted == pytest.approx(s.truth.graft_volume_mm3, rel=0.2)


def test_truth_fraction_is_the_curve_asked_for(subjects):
    for sub in subjects.values():
        for s in sub.sessions:
            expected = surviving_fraction(sub.spec.graft, s.days_post_transplant)
            if expected is None:
                assert s.truth.surviving_fraction is None and s.days_post_transplant < 0
            else:
                assert s.truth.surviving_fraction == pytest.approx(expected, abs=1e-6)
                assert s.truth.surviving_cells == pytest.approx(
                    expected * sub.spec.graft.injected_cells, abs=1)


def test_masks_and_images_share_the_t2w_grid(subjects):
    for s in _sessions(subjects):
        for vol in (s.dseg, s.graft_probseg, s.lesion_probseg, s.cord_probseg):
            assert vol.same_space(s.t2w)
        assert isinstance(s.dseg, LabelVolume)
        assert set(np.unique(s.dseg.array)) <= {0, 1, 2, 3}
        assert {1, 2} <= set(np.unique(s.dseg.array))          # cord and lesion everywhere
        total = s.graft_probseg.array + s.lesion_probseg.array + s.cord_probseg.array
        assert total.max() <= 1.0 + 1e-5 and total.min() >= 0
        assert s.t2w.meta["contrast"] == "T2w" and s.t2w.orientation == "PSR"


def test_spio_gives_a_multi_echo_t2starw_on_the_t2w_grid(subjects):
    sub = subjects["spio"]
    for s in sub.sessions:
        assert s.t2starw.same_space(s.t2w) and s.t2starw.array.ndim == 4
        assert s.t2starw.array.shape[3] == len(s.t2starw.meta["echo_times_ms"])
        means = s.t2starw.array.reshape(-1, s.t2starw.array.shape[3]).mean(axis=0)
        assert np.all(np.diff(means) < 0)                      # signal decays with TE
    assert subjects["none"].sessions[0].t2starw is None
    assert subjects["none"].sessions[0].f19 is None


def test_t2w_intensities_follow_the_contract(subjects):
    """Noise-free voxels fully inside one tissue carry that tissue's contract intensity."""
    sub = subjects["none"]
    spec = sub.spec
    session = spec.sessions[0]
    clean = render_session(spec, session, graft_state(spec.graft, -1.0),
                           injury_state(spec.injury, session.days_post_transplant),
                           Textures.draw(np.random.default_rng(0)))
    pure_cord = clean.cord > 0.999
    assert np.median(clean.t2w[pure_cord]) == pytest.approx(1.0, abs=0.1)


@pytest.fixture(scope="module")
def lost_spio():
    rng = np.random.default_rng(11)
    spec = sample_spec(rng, label="spio", plane="sagittal", survival="total_loss", n_sessions=5)
    graft = dataclasses.replace(spec.graft, tau_days=3.0, iron_half_life_days=120.0)
    return dataclasses.replace(spec, graft=graft)


def test_spio_void_outlives_the_cells(lost_spio):
    spec = lost_spio
    session = spec.sessions[4]                                     # about week 26
    state = graft_state(spec.graft, session.days_post_transplant)
    assert state.surviving_cells == 0 and state.iron_ug > 0.2 * state.iron_ug + 1e-3
    injury = injury_state(spec.injury, session.days_post_transplant)
    textures = Textures.draw(np.random.default_rng(0))
    with_iron = render_session(spec, session, state, injury, textures)
    no_iron = render_session(spec, session, dataclasses.replace(state, lingering_iron_ug=0.0),
                             injury, textures)
    last = -1
    deficit = no_iron.gre[..., last] - with_iron.gre[..., last]
    assert deficit.min() > -1e-5
    assert deficit.sum() > 0.5 * with_iron.gre[..., last][with_iron.cord > 0.5].mean()
    assert with_iron.graft.sum() == 0                             # no graft left to see


def test_iron_integral_is_preserved_by_the_blooming_kernel(lost_spio):
    from imaging.phantom import anatomy as A
    from imaging.phantom.contrast import PointTissue
    from imaging.phantom.graft import calibrated_graft
    from imaging.phantom.grid import scanner_from_body, session_grid, supersample
    from imaging.phantom.render import _cord_box, bloom_box, iron_density
    spec = lost_spio
    session = spec.sessions[1]
    state = graft_state(spec.graft, session.days_post_transplant)
    grid = session_grid(session)
    body = np.linalg.inv(scanner_from_body(session))

    def graft_at(points):
        labels = A.tissue_labels(points.x, points.y, points.z, spec.anatomy)
        in_cord = np.isin(labels, A.CORD_TISSUES)
        return labels, in_cord, *calibrated_graft(
            points.x, points.y, points.z, in_cord, spec.anatomy, spec.graft,
            state.volume_mm3, points.point_volume_mm3, points.step_mm)
    cord = supersample(grid, body, *_cord_box(grid, body, spec), 0.3)
    labels, _, _, scale = graft_at(cord)
    fine = supersample(grid, body, *bloom_box(grid, body, spec, cord,
                                              PointTissue(labels, *[None] * 5), scale), 0.3)
    _, in_cord, g, fine_scale = graft_at(fine)
    assert fine_scale == pytest.approx(scale, rel=1e-9)        # the same graft in both boxes
    iron = iron_density(spec, fine, in_cord, g, state)
    assert float(iron.sum()) * fine.point_volume_mm3 == pytest.approx(state.iron_ug, rel=1e-3)
    assert np.count_nonzero(iron > 1e-6 * iron.max()) > 2 * np.count_nonzero(g)  # blooms


def test_19f_signal_is_proportional_to_fluorine_atoms(subjects):
    sub = subjects["19f"]
    for s in sub.sessions:
        f19 = s.f19
        assert f19.meta["contrast"] == "19F" and f19.meta["reference_atoms"] > 0
        assert s.reference_mask.same_space(f19)
        tube = s.reference_mask.array > 0
        ref_signal = float(f19.array[tube].sum())
        assert ref_signal * f19.meta["atoms_per_signal_unit"] == pytest.approx(
            f19.meta["reference_atoms"], rel=0.1)
        body = ~tube
        estimated = float(f19.array[body].sum()) / ref_signal * f19.meta["reference_atoms"]
        noise_budget = 4 * f19.meta["noise_sd"] * np.sqrt(body.sum()) / ref_signal \
            * f19.meta["reference_atoms"]
        assert abs(estimated - s.truth.fluorine_atoms) < noise_budget
    early = sub.sessions[1]
    assert early.truth.fluorine_atoms == pytest.approx(
        early.truth.surviving_cells * sub.spec.graft.fluorine_atoms_per_cell, rel=1e-6)


def test_controls_have_no_graft(rng):
    spec = sample_spec(rng, label="none", control=True, plane="sagittal", n_sessions=2)
    sub = simulate_subject(spec, rng)
    for s in sub.sessions:
        assert s.truth.graft_volume_mm3 == 0 and s.truth.surviving_fraction is None
        assert s.graft_probseg.array.max() == 0 and s.lesion_probseg.array.max() > 0.5


def test_channel_sums_reproduce_the_per_point_rendering(lost_spio):
    """The fast path (all contrasts from per-voxel channel sums, iron added point by point)
    gives what evaluating every contrast at every sub-voxel point gives."""
    spec = lost_spio
    session = spec.sessions[1]                                     # living graft and iron
    state = graft_state(spec.graft, session.days_post_transplant)
    assert state.surviving_cells > 0 and state.iron_ug > 0
    args = (spec, session, state, injury_state(spec.injury, session.days_post_transplant),
            Textures.draw(np.random.default_rng(0)))
    fast = render_session(*args)
    reference = render_session(*args, per_point=True)
    assert fast.graft.sum() > 0
    np.testing.assert_allclose(fast.t2w, reference.t2w, atol=1e-5)
    np.testing.assert_allclose(fast.gre, reference.gre, atol=1e-5)
    for a, b in ((fast.graft, reference.graft), (fast.lesion, reference.lesion),
                 (fast.cord, reference.cord)):
        np.testing.assert_array_equal(a, b)
