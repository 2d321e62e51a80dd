"""simulate_subject: a spec and a Generator -> a longitudinal subject with known truth."""

from __future__ import annotations

import logging

import numpy as np

from imaging.phantom.acquisition import INTENSITY_SCALE, ON_DISK_CODES, bias_field, rician
from imaging.phantom.contrast import gre_signal
from imaging.phantom.fluorine import (ATOMS_PER_SIGNAL_UNIT, CleanFluorine, f19_noise_sd,
                                      render_fluorine)
from imaging.phantom.graft import GraftState, graft_state
from imaging.phantom.injury import injury_state
from imaging.phantom.render import CleanSession, Textures, render_session
from imaging.phantom.results import SessionTruth, SimulatedSession, SimulatedSubject
from imaging.phantom.spec import PhantomSpec, SessionSpec
from imaging.volume import LabelVolume, Volume

log = logging.getLogger(__name__)

T2W_ECHO_TIME_MS = 100.0
T2W_REPETITION_TIME_MS = 3000.0
GRE_REPETITION_TIME_MS = 600.0
F19_REPETITION_TIME_MS = 1000.0
FIELD_STRENGTH_T = 3.0


def simulate_subject(spec: PhantomSpec, rng: np.random.Generator,
                     subject_id: str = "sub-001") -> SimulatedSubject:
    """Every session of one subject. Same spec and same Generator state -> same arrays."""
    textures = Textures.draw(rng)
    states = [graft_state(spec.graft, s.days_post_transplant) for s in spec.sessions]
    cleans, fluorines = [], []
    for session, state in zip(spec.sessions, states):
        clean = render_session(spec, session, state,
                               injury_state(spec.injury, session.days_post_transplant), textures)
        cleans.append(clean)
        fluorines.append(render_fluorine(spec, session, clean.body_from_scanner, state,
                                         clean.graft_scale) if spec.fluorine else None)
        log.debug("%s %s rendered", subject_id, session.session_id)
    f19_sd = (f19_noise_sd(spec, fluorines, [s.days_post_transplant for s in spec.sessions])
              if spec.fluorine else 0.0)
    sessions = tuple(
        _noisy_session(spec, session, clean, fluorine, state, f19_sd, subject_id, rng)
        for session, clean, fluorine, state in zip(spec.sessions, cleans, fluorines, states))
    return SimulatedSubject(subject_id, spec, sessions)


def _truth(state: GraftState) -> SessionTruth:
    return SessionTruth(state.volume_mm3, state.surviving_cells, state.surviving_fraction,
                        state.iron_ug, state.fluorine_atoms)


def _noisy_session(spec: PhantomSpec, session: SessionSpec, clean: CleanSession,
                   fluorine: CleanFluorine | None, state: GraftState, f19_sd: float,
                   subject_id: str, rng: np.random.Generator) -> SimulatedSession:
    codes = ON_DISK_CODES[session.plane]
    affine = clean.grid.affine
    bias = bias_field(clean.grid.shape, session.bias_amplitude, rng)
    base = {"subject": subject_id, "session": session.session_id,
            "days_post_transplant": session.days_post_transplant, "plane": session.plane,
            "field_strength_t": FIELD_STRENGTH_T, "modality": "MR"}
    t2w = rician(clean.t2w * bias * INTENSITY_SCALE, INTENSITY_SCALE / session.cord_snr, rng)
    t2w_meta = {**base, "contrast": "T2w", "echo_times_ms": (T2W_ECHO_TIME_MS,),
                "repetition_time_ms": T2W_REPETITION_TIME_MS,
                "series_description": f"T2w {session.plane} TSE"}
    t2starw = None
    if clean.gre is not None:
        cord_first = gre_signal(spec.tissues, "white_matter", session.echo_times_ms[0])
        sd = INTENSITY_SCALE * cord_first / session.cord_snr
        gre = rician(clean.gre * bias[..., None] * INTENSITY_SCALE, sd, rng)
        t2starw = Volume(gre, affine, {
            **base, "contrast": "T2starw", "echo_times_ms": tuple(session.echo_times_ms),
            "repetition_time_ms": GRE_REPETITION_TIME_MS, "fourth_axis": "echo",
            "series_description": f"T2starw {session.plane} multi-echo GRE"}).reorient(codes)
    f19, tube = _f19_volumes(fluorine, f19_sd, base, codes, rng)
    labels = np.stack([1.0 - clean.cord - clean.lesion - clean.graft, clean.cord, clean.lesion,
                       clean.graft]).argmax(axis=0).astype(np.int16)
    truth_meta = {**base, "space": "T2w"}
    return SimulatedSession(
        session_id=session.session_id, days_post_transplant=session.days_post_transplant,
        t2w=Volume(t2w, affine, t2w_meta).reorient(codes), t2starw=t2starw, f19=f19,
        dseg=LabelVolume(labels, affine, {**truth_meta, "contrast": "dseg"}).reorient(codes),
        graft_probseg=Volume(clean.graft, affine, {**truth_meta, "label": "graft"}).reorient(codes),
        lesion_probseg=Volume(clean.lesion, affine,
                              {**truth_meta, "label": "lesion"}).reorient(codes),
        cord_probseg=Volume(clean.cord, affine, {**truth_meta, "label": "cord"}).reorient(codes),
        reference_mask=tube, truth=_truth(state))


def _f19_volumes(fluorine: CleanFluorine | None, sd: float, base: dict, codes: str,
                 rng: np.random.Generator):
    if fluorine is None:
        return None, None
    signal = (fluorine.atoms / ATOMS_PER_SIGNAL_UNIT).astype(np.float32)
    noisy = signal + rng.normal(0.0, sd, size=signal.shape).astype(np.float32)
    meta = {**base, "contrast": "19F", "reference_atoms": fluorine.reference_atoms,
            "atoms_per_signal_unit": ATOMS_PER_SIGNAL_UNIT, "noise_sd": sd,
            "repetition_time_ms": F19_REPETITION_TIME_MS,
            "series_description": "19F 3D gradient echo"}
    f19 = Volume(noisy, fluorine.grid.affine, meta).reorient(codes)
    tube = LabelVolume(fluorine.tube_mask.astype(np.int16), fluorine.grid.affine,
                       {**base, "label": "reference"}).reorient(codes)
    return f19, tube
