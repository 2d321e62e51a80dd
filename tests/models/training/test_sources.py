from dataclasses import replace

import numpy as np
import pytest

from models.input import block_average
from models.training.recipes import TrainConfig, base_card
from models.training.sources import (REAL_HOLDOUT, REAL_TRAIN, WIDE_FOV_MM, phantom_cases,
                                     phantom_sessions, session_targets, wide_sessions)

SEG_CARD = base_card(TrainConfig(model="seg"))
LOCATOR_CARD = base_card(TrainConfig(model="locator"))


def test_held_out_real_scans_are_never_trained_on():
    trained = {s.image for s in REAL_TRAIN}
    assert not trained & {s.image for s in REAL_HOLDOUT}
    assert all("gm-challenge" in s.image for s in REAL_HOLDOUT)


def test_healthy_real_cords_supervise_every_label_of_the_segmenter_only():
    from models.training.sources import real_annotation
    scan = REAL_HOLDOUT[0]
    assert scan.healthy and all(s.healthy for s in REAL_TRAIN)
    assert real_annotation(scan, SEG_CARD) == "healthy"
    assert real_annotation(scan, LOCATOR_CARD) == "cord"
    assert real_annotation(replace(scan, healthy=False), SEG_CARD) == "cord"


def test_phantom_cases_keep_the_graft_volume_exactly(tmp_path):
    seed = 1000
    sessions = dict(phantom_sessions(seed))
    cases = phantom_cases([seed], SEG_CARD, cache=tmp_path, validation=True)
    assert {c.annotation for c in cases} == {"full"}
    for case in cases:
        session = sessions[case.name.rsplit(" ", 1)[0]]
        truth_mm3 = session.truth.graft_volume_mm3
        fine_voxel_mm3 = session.t2w.voxel_volume_mm3 / np.prod(case.factors)
        found_mm3 = case.target_fractions()[3].sum() * fine_voxel_mm3
        assert found_mm3 == pytest.approx(truth_mm3, rel=0.02, abs=0.5)
        targets = session_targets(session)
        np.testing.assert_allclose(targets.sum(0), 1.0, atol=1e-5)
    # a second call reads the cache instead of simulating again
    again = phantom_cases([seed], SEG_CARD, cache=tmp_path, validation=True)
    assert [c.name for c in again] == [c.name for c in cases]
    np.testing.assert_array_equal(block_average(again[0].target_fractions(), again[0].factors),
                                  block_average(cases[0].target_fractions(), cases[0].factors))


def test_wide_views_cover_the_cord_in_a_view_wider_than_a_locator_patch(tmp_path):
    views = list(wide_sessions(1000, 2))
    assert [name.split()[4] for name, _ in views] == ["sagittal", "axial"]
    for (name, session), plane in zip(views, ("sagittal", "axial")):
        extent = np.asarray(session.t2w.spatial_shape) * np.asarray(session.t2w.spacing)
        ras_extent = sorted(extent)[-1]
        assert ras_extent >= min(r[0] for r in WIDE_FOV_MM[plane]) * 0.95, name
        cord = session.cord_probseg.array > 0.5
        assert cord.sum() > 0, f"{name}: the cord left the view"
    # the locator's patch is 64 voxels of 2 mm: the wide views are bigger than that
    cases = phantom_cases([1000], LOCATOR_CARD, cache=tmp_path, wide_views=2)
    assert any(max(c.image.shape) > LOCATOR_CARD.patch_size[0] for c in cases)
    assert all(c.target_fractions()[1].max() > 0.5 for c in cases)
    # the same seed gives the same views (cached or not)
    again = phantom_cases([1000], LOCATOR_CARD, wide_views=2)
    assert [c.name for c in again] == [c.name for c in cases]
    np.testing.assert_array_equal(again[0].image, cases[0].image)


def test_baseline_moved_by_the_known_poses_lines_up_with_each_session(tmp_path):
    """The baseline's cord, moved onto a later session's grid by the two body poses, sits
    where that session's cord is (within the 0.5 mm misalignment it is given on purpose),
    and each graft-model case carries it, cached with the case."""
    from imaging.volume import Volume
    from models.training.sources import _simulated_sessions, moved_baseline
    sessions = list(_simulated_sessions(1001, 3))
    _, base, base_spec = sessions[0]
    cord = lambda s: s.cord_probseg.array + s.lesion_probseg.array + s.graft_probseg.array  # noqa: E731
    base_cord = Volume(cord(base), base.t2w.affine)
    for _, session, spec in sessions[1:]:
        moved = moved_baseline(base_cord, base_spec, spec, session.t2w, np.random.default_rng(0))
        assert moved.spatial_shape == session.t2w.spatial_shape
        centre = lambda a: session.t2w.world_coordinates(np.argwhere(a > 0.5)).mean(0)  # noqa: E731
        assert np.abs(centre(moved.array) - centre(cord(session)))[:2].max() < 1.0
        unmoved = moved_baseline(base_cord, base_spec, base_spec, session.t2w,
                                 np.random.default_rng(0))
        overlap = lambda a: np.minimum(a, cord(session)).sum() / cord(session).sum()  # noqa: E731
        assert overlap(moved.array) > overlap(unmoved.array)
    graft_card = base_card(TrainConfig(model="graft", baseline_channel=True))
    assert graft_card.takes_baseline
    cases = phantom_cases([1001], graft_card, cache=tmp_path, with_baseline=True)
    assert cases and all(c.prior is not None and c.prior.shape == c.image.shape for c in cases)
    again = phantom_cases([1001], graft_card, cache=tmp_path, with_baseline=True)
    np.testing.assert_array_equal(again[0].prior, cases[0].prior)
