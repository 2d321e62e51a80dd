"""What the simulator returns: subjects, sessions and the truth of each session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imaging.phantom.spec import PhantomSpec
from imaging.volume import LabelVolume, Volume


@dataclass(frozen=True)
class SessionTruth:
    """Known answer for one session (zeros before the injection and for controls)."""

    graft_volume_mm3: float
    surviving_cells: float
    surviving_fraction: float | None   # None before the injection (and for controls)
    iron_ug: float
    fluorine_atoms: float

    def to_dict(self) -> dict[str, Any]:
        return {"graft_volume_mm3": self.graft_volume_mm3,
                "surviving_cells": self.surviving_cells,
                "surviving_fraction": self.surviving_fraction,
                "iron_ug": self.iron_ug, "fluorine_atoms": self.fluorine_atoms}


@dataclass(frozen=True)
class SimulatedSession:
    """One session's images (each on its own grid) and truth masks (on the T2w grid)."""

    session_id: str
    days_post_transplant: float
    t2w: Volume
    t2starw: Volume | None
    f19: Volume | None
    dseg: LabelVolume
    graft_probseg: Volume
    lesion_probseg: Volume
    cord_probseg: Volume
    reference_mask: LabelVolume | None
    truth: SessionTruth


@dataclass(frozen=True)
class SimulatedSubject:
    subject_id: str
    spec: PhantomSpec
    sessions: tuple[SimulatedSession, ...]

    @property
    def injected_cells(self) -> float:
        return self.spec.graft.injected_cells

    @property
    def label(self) -> str:
        return self.spec.graft.label
