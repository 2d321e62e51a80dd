"""Every sampled parameter lies inside the phantom contract; bad specs are refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from imaging.errors import PhantomError
from imaging.phantom import contract as C
from imaging.phantom import sample_spec


def _inside(value, bounds):
    return bounds[0] - 1e-9 <= value <= bounds[1] + 1e-9


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), label=st.sampled_from(C.LABELS),
       control=st.booleans(), resolution=st.sampled_from(C.RESOLUTIONS))
def test_sampled_parameters_are_inside_the_contract(seed, label, control, resolution):
    spec = sample_spec(np.random.default_rng(seed), label=label, control=control,
                       resolution=resolution)
    for name, bounds in C.T2W_RANGES.items():
        assert _inside(spec.tissues.t2w[name], bounds), name
    for name, bounds in C.R2STAR_RANGES_PER_S.items():
        assert _inside(spec.tissues.r2star_per_s[name], bounds), name
    g = spec.graft
    assert _inside(g.packing_density_cells_per_mm3, C.PACKING_DENSITY_CELLS_PER_MM3)
    assert _inside(g.plateau, C.PLATEAU) and _inside(g.tau_days, C.TAU_DAYS)
    assert _inside(g.iron_pg_per_cell, C.IRON_PG_PER_CELL)
    assert _inside(g.fluorine_atoms_per_cell, C.FLUORINE_ATOMS_PER_CELL)
    if control:
        assert g.injected_cells == 0
    else:
        assert _inside(g.injected_cells, C.INJECTED_CELLS)
        assert _inside(g.injection_volume_mm3, C.INJECTION_VOLUME_UL)
    assert _inside(spec.anatomy.cord_half_width_mm * 2, (9.0, 11.0))
    assert _inside(spec.injury.edema_initial_length_mm, C.EDEMA_LENGTH_MM)
    assert _inside(spec.injury.cyst_final_diameter_mm, C.CYST_DIAMETER_MM)
    days = [s.days_post_transplant for s in spec.sessions]
    assert days[0] < 0 < days[1] <= 7 and days[-1] <= C.LAST_SESSION_DAYS
    for s in spec.sessions:
        assert _inside(s.inplane_mm, C.INPLANE_MM) and _inside(s.slice_mm, C.SLICE_MM)
        assert _inside(s.cord_snr, C.CORD_SNR) and _inside(s.bias_amplitude, C.BIAS_AMPLITUDE)
        assert np.linalg.norm(s.translation_mm) <= C.MOTION_MM / 2 + 1e-9
        assert np.linalg.norm(s.rotation_deg) <= C.MOTION_DEG / 2 + 1e-9
        assert bool(s.echo_times_ms) == (label == "spio")
        if s.echo_times_ms:
            assert _inside(len(s.echo_times_ms), C.N_ECHOES)
            assert all(_inside(t, C.ECHO_TIME_MS) for t in s.echo_times_ms)
    if label == "19f":
        assert _inside(spec.fluorine.voxel_mm, C.F19_VOXEL_MM)
        assert _inside(spec.fluorine.graft_snr, C.F19_GRAFT_SNR)
    else:
        assert spec.fluorine is None


def test_out_of_contract_value_is_refused_with_the_range(rng):
    spec = sample_spec(rng, label="spio")
    with pytest.raises(PhantomError, match=r"plateau = 0.9 is outside .*\[0.0, 0.6\]"):
        dataclasses.replace(spec.graft, plateau=0.9)
    with pytest.raises(PhantomError, match=r"cord_snr = 50 is outside"):
        dataclasses.replace(spec.sessions[0], cord_snr=50)
    with pytest.raises(PhantomError, match=r"t2w\[graft\] = 1.6 is outside"):
        dataclasses.replace(spec.tissues, t2w={**spec.tissues.t2w, "graft": 1.6})


def test_bad_choices_are_refused(rng):
    with pytest.raises(PhantomError, match=r"label = 'gd'; expected one of"):
        sample_spec(rng, label="gd")
    with pytest.raises(PhantomError, match=r"n_sessions = 9 is outside"):
        sample_spec(rng, n_sessions=9)
    spec = sample_spec(rng, label="none")
    with pytest.raises(PhantomError, match="strictly increasing"):
        dataclasses.replace(spec, sessions=spec.sessions[::-1])
