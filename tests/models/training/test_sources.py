import numpy as np
import pytest

from models.input import block_average
from models.training.recipes import TrainConfig, base_card
from models.training.sources import (REAL_HOLDOUT, REAL_TRAIN, phantom_cases, phantom_sessions,
                                     session_targets)

SEG_CARD = base_card(TrainConfig(model="seg"))


def test_held_out_real_scans_are_never_trained_on():
    trained = {s.image for s in REAL_TRAIN}
    assert not trained & {s.image for s in REAL_HOLDOUT}
    assert all("gm-challenge" in s.image for s in REAL_HOLDOUT)


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
