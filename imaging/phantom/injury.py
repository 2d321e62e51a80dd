"""The injury at the epicentre and how it evolves: edema shrinks, a cyst forms, blood stays.

Days count from the transplant; the injury happened ``injury_to_transplant_days`` before,
so it is already there at the pre-injection baseline. All three lesion parts are confined
to the cord.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imaging.phantom.anatomy import CORD_TISSUES, CYST, HEMORRHAGE, centreline_y, cord_coordinates
from imaging.phantom.spec import AnatomySpec, InjurySpec

EDEMA_EDGE_WIDTH = 0.12      # soft border width, in units of the edema's own radius
MIN_CYST_DIAMETER_MM = 0.5   # a forming cyst smaller than this is not drawn


@dataclass(frozen=True)
class InjuryState:
    """The lesion on one day."""

    days_since_injury: float
    edema_length_mm: float
    cyst_diameter_mm: float

    def to_dict(self) -> dict[str, float]:
        return {"days_since_injury": self.days_since_injury,
                "edema_length_mm": self.edema_length_mm,
                "cyst_diameter_mm": self.cyst_diameter_mm}


def injury_state(spec: InjurySpec, days_post_transplant: float) -> InjuryState:
    """Edema length decays exponentially to its final length; the cyst grows to its final size."""
    since = max(0.0, days_post_transplant + spec.injury_to_transplant_days)
    decay = np.exp(-since / spec.edema_tau_days)
    length = spec.edema_final_length_mm + (spec.edema_initial_length_mm
                                           - spec.edema_final_length_mm) * decay
    cyst = spec.cyst_final_diameter_mm * (1.0 - np.exp(-since / spec.cyst_tau_days))
    return InjuryState(float(since), float(length), float(cyst))


def apply_injury(labels: np.ndarray, x, y, z, anatomy: AnatomySpec, spec: InjurySpec,
                 state: InjuryState) -> np.ndarray:
    """Paint cyst and hemorrhage into ``labels`` (a working array) and return edema weight 0-1.

    Only cord points near the epicentre are evaluated (the lesion cannot reach further).
    """
    reach = max(state.edema_length_mm * (0.5 + 4 * EDEMA_EDGE_WIDTH),
                *(abs(o[2]) + d for d, o in zip(spec.hemorrhage_diameters_mm,
                                                 spec.hemorrhage_offsets_mm)))
    flat = labels.reshape(-1)
    near = np.flatnonzero((np.abs(np.ravel(z)) < reach) & np.isin(flat, CORD_TISSUES))
    px, py, pz = (np.ravel(a)[near] for a in (x, y, z))
    U, V = cord_coordinates(px, py, pz, anatomy)
    rho = np.sqrt((pz / (state.edema_length_mm / 2)) ** 2
                  + (U * U + V * V) / spec.edema_radius ** 2)
    weight = 1.0 / (1.0 + np.exp(np.clip((rho - 1.0) / EDEMA_EDGE_WIDTH, -50, 50)))
    v = py - centreline_y(pz, anatomy)
    part = flat[near]
    if state.cyst_diameter_mm >= MIN_CYST_DIAMETER_MM:
        r = state.cyst_diameter_mm / 2
        part[(px / r) ** 2 + (v / r) ** 2 + (pz / (1.5 * r)) ** 2 <= 1.0] = CYST
    for d, (ox, oy, oz) in zip(spec.hemorrhage_diameters_mm, spec.hemorrhage_offsets_mm):
        part[(px - ox) ** 2 + (v - oy) ** 2 + (pz - oz) ** 2 <= (d / 2) ** 2] = HEMORRHAGE
    flat[near] = part
    weight[(part == CYST) | (part == HEMORRHAGE)] = 0.0
    edema = np.zeros(labels.shape, dtype=np.float32)
    edema.reshape(-1)[near] = weight
    return edema
