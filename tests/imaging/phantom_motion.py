"""Phantom session pairs with a known rigid motion between them (registration tests and the
``registration_phantoms`` benchmark)."""

from __future__ import annotations

import dataclasses

import numpy as np

from imaging.phantom import sample_spec, simulate_subject
from imaging.phantom.grid import scanner_from_body
from imaging.rigid import RigidTransform
from imaging.volume import LabelVolume


def plane_change_pair(seed: int, motion_mm: float = 5.0, motion_deg: float = 5.0):
    """Two clinical phantom sessions of one body, sagittal then axial (3-4 mm slices), the body
    moved ``motion_mm`` and ``motion_deg`` between them (half each way from the common pose).

    Returns (fixed T2w = the axial session, moving T2w = the sagittal one, [fixed cord,
    moving cord] truth masks, the true fixed -> moving transform).
    """
    rng = np.random.default_rng(seed)
    spec = sample_spec(rng, label="none", resolution="clinical", plane="sagittal", n_sessions=2)
    axial = sample_spec(np.random.default_rng(seed + 1), label="none", resolution="clinical",
                        plane="axial", n_sessions=2).sessions[1]
    shift, axis = (v / np.linalg.norm(v) for v in rng.normal(size=(2, 3)))
    first = dataclasses.replace(spec.sessions[0], rotation_deg=tuple(motion_deg / 2 * axis),
                                translation_mm=tuple(motion_mm / 2 * shift))
    second = dataclasses.replace(axial, session_id="ses-02",
                                 rotation_deg=tuple(-motion_deg / 2 * axis),
                                 translation_mm=tuple(-motion_mm / 2 * shift),
                                 days_post_transplant=spec.sessions[1].days_post_transplant)
    subject = simulate_subject(dataclasses.replace(spec, sessions=(first, second)), rng)
    fixed, moving = subject.sessions[1], subject.sessions[0]
    truth = RigidTransform(scanner_from_body(first) @ np.linalg.inv(scanner_from_body(second)))
    cords = [LabelVolume((np.asarray(s.dseg.array) >= 1).astype(np.uint8), s.dseg.affine)
             for s in (fixed, moving)]
    return fixed.t2w, moving.t2w, cords, truth
