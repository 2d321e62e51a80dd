"""Parameters of one simulated subject: frozen dataclasses, checked against the contract.

Everything a simulated study depends on, except the noise draws, lives here, so a spec
(plus the Generator passed to ``simulate_subject``) reproduces a subject exactly.
Coordinates are in the *body frame*: millimetres, x towards the subject's right,
y anterior, z superior, with the injury epicentre of the cord at z = 0 on the cord's
centre line. ``sample_spec`` (in ``imaging.phantom.sampling``) draws a spec inside the contract.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from imaging.errors import PhantomError
from imaging.phantom import contract as C


@dataclass(frozen=True)
class AnatomySpec:
    """A cervical segment: cord, CSF, canal, vertebrae, discs, fat, muscle (body frame, mm)."""

    cord_half_width_mm: float
    cord_half_depth_mm: float
    csf_lateral_mm: float          # CSF between cord and dura, left/right
    csf_ap_mm: float               # CSF between cord and dura, front/back
    lordosis_sagitta_mm: float     # anterior bow of the centre line over 80 mm of cord
    lordosis_apex_z_mm: float      # where the bow is deepest
    vertebra_period_mm: float      # vertebral body + disc height
    disc_height_mm: float
    vertebra_phase_mm: float       # z of the lower edge of one disc
    vertebral_body_depth_mm: float
    vertebral_body_width_mm: float
    skin_depth_mm: float           # cord centre to posterior skin
    subcutaneous_fat_mm: float

    def __post_init__(self) -> None:
        C.require_in("cord_half_width_mm", self.cord_half_width_mm, C.CORD_HALF_WIDTH_MM)
        C.require_in("cord_half_depth_mm", self.cord_half_depth_mm, C.CORD_HALF_DEPTH_MM)
        if not 0 < self.disc_height_mm < self.vertebra_period_mm:
            raise PhantomError(f"disc_height_mm = {self.disc_height_mm} must be positive and "
                               f"below vertebra_period_mm = {self.vertebra_period_mm}")


@dataclass(frozen=True)
class TissueSpec:
    """Per-tissue T2w intensity (cord = 1), R2* (1/s at 3 T) and relative proton density."""

    t2w: Mapping[str, float]
    r2star_per_s: Mapping[str, float]
    proton_density: Mapping[str, float]

    def __post_init__(self) -> None:
        for name, bounds in C.T2W_RANGES.items():
            C.require_in(f"t2w[{name}]", self._get(self.t2w, "t2w", name), bounds)
        for name, bounds in C.R2STAR_RANGES_PER_S.items():
            C.require_in(f"r2star_per_s[{name}]",
                         self._get(self.r2star_per_s, "r2star_per_s", name), bounds)

    @staticmethod
    def _get(table: Mapping[str, float], field: str, name: str) -> float:
        if name not in table:
            raise PhantomError(f"TissueSpec.{field} has no value for {name!r}; expected every "
                               f"tissue of the contract ({sorted(C.T2W_RANGES)})")
        return float(table[name])


@dataclass(frozen=True)
class InjurySpec:
    """The injury and its evolution; days count from the transplant (injury at -injury_to_transplant)."""

    injury_to_transplant_days: float
    edema_initial_length_mm: float     # total length along the cord on the day of injury
    edema_final_length_mm: float       # what is left after months
    edema_tau_days: float
    edema_radius: float                # cross-section reach, in units of the cord radius
    cyst_final_diameter_mm: float
    cyst_tau_days: float
    hemorrhage_diameters_mm: tuple[float, ...]
    hemorrhage_offsets_mm: tuple[tuple[float, float, float], ...]  # (x, y, z) from the epicentre

    def __post_init__(self) -> None:
        C.require_in("edema_initial_length_mm", self.edema_initial_length_mm, C.EDEMA_LENGTH_MM)
        C.require_in("edema_final_length_mm", self.edema_final_length_mm, C.EDEMA_LENGTH_MM)
        C.require_in("cyst_final_diameter_mm", self.cyst_final_diameter_mm, C.CYST_DIAMETER_MM)
        for d in self.hemorrhage_diameters_mm:
            C.require_in("hemorrhage diameter (mm)", d, C.HEMORRHAGE_DIAMETER_MM)
        if len(self.hemorrhage_diameters_mm) != len(self.hemorrhage_offsets_mm):
            raise PhantomError("hemorrhage_diameters_mm and hemorrhage_offsets_mm differ in length")


@dataclass(frozen=True)
class Deposit:
    """One ellipsoid deposit at injection: long axis along the cord; sizes are nominal.

    The simulator scales all deposits together so that the discretised graft volume equals
    living cells / packing density at every session (so the sizes follow the cell count).
    """

    offset_mm: tuple[float, float, float]   # (x, y, z) from the epicentre on the centre line
    width_mm: float
    length_mm: float


@dataclass(frozen=True)
class GraftSpec:
    """The transplant: cells, how they are labelled, how they survive, what lingers."""

    label: str                        # none | spio | 19f
    control: bool                     # injured, no graft
    injected_cells: float             # 0 for a control
    packing_density_cells_per_mm3: float
    deposits: tuple[Deposit, ...]
    survival_model: str               # decay | total_loss | overgrowth
    plateau: float                    # p in f(t) = p + (1 - p) exp(-t / tau)
    tau_days: float
    doubling_days: float              # overgrowth only: doubling time after day 60
    iron_pg_per_cell: float
    iron_half_life_days: float        # clearance of iron released by dead cells
    bloom_sigma_mm: float             # spread of the R2* effect beyond the iron
    relaxivity_per_s_per_ug_per_mm3: float
    fluorine_atoms_per_cell: float
    texture_amplitude: float          # relative std of the graft's mottled texture

    def __post_init__(self) -> None:
        C.require_choice("label", self.label, C.LABELS)
        C.require_choice("survival_model", self.survival_model, C.SURVIVAL_MODELS)
        C.require_in("packing_density_cells_per_mm3", self.packing_density_cells_per_mm3,
                     C.PACKING_DENSITY_CELLS_PER_MM3)
        C.require_in("plateau", self.plateau, C.PLATEAU)
        C.require_in("tau_days", self.tau_days, C.TAU_DAYS)
        C.require_in("iron_pg_per_cell", self.iron_pg_per_cell, C.IRON_PG_PER_CELL)
        C.require_in("fluorine_atoms_per_cell", self.fluorine_atoms_per_cell,
                     C.FLUORINE_ATOMS_PER_CELL)
        if self.control:
            if self.injected_cells != 0:
                raise PhantomError(f"a control has no graft: injected_cells = "
                                   f"{self.injected_cells}, expected 0")
            return
        C.require_in("injected_cells", self.injected_cells, C.INJECTED_CELLS)
        C.require_in("injection volume (uL = mm3)", self.injection_volume_mm3,
                     C.INJECTION_VOLUME_UL)
        if not self.deposits:
            raise PhantomError("a graft needs at least one deposit; got none")
        if self.survival_model == "total_loss" and self.plateau != 0:
            raise PhantomError(f"survival_model 'total_loss' needs plateau 0, got {self.plateau}")

    @property
    def injection_volume_mm3(self) -> float:
        """Graft volume on the day of injection (all cells alive), mm3 = microlitres."""
        return self.injected_cells / self.packing_density_cells_per_mm3


@dataclass(frozen=True)
class SessionSpec:
    """One scanning session: when, how it is acquired, and where the subject lies."""

    session_id: str
    days_post_transplant: float
    plane: str
    inplane_mm: float
    slice_mm: float
    fov_mm: tuple[float, float, float]        # extent along scanner R, A, S
    fov_shift_mm: tuple[float, float, float]  # FOV centre minus the nominal centre
    rotation_deg: tuple[float, float, float]  # rotation vector of the body about the epicentre
    translation_mm: tuple[float, float, float]
    bias_amplitude: float
    cord_snr: float
    echo_times_ms: tuple[float, ...]          # empty unless a multi-echo T2*w is acquired

    def __post_init__(self) -> None:
        C.require_choice("plane", self.plane, C.PLANES)
        C.require_in("inplane_mm", self.inplane_mm, C.INPLANE_MM)
        C.require_in("slice_mm", self.slice_mm, C.SLICE_MM)
        C.require_in("bias_amplitude", self.bias_amplitude, C.BIAS_AMPLITUDE)
        C.require_in("cord_snr", self.cord_snr, C.CORD_SNR)
        C.require_in("days_post_transplant", self.days_post_transplant,
                     (-C.LAST_SESSION_DAYS, C.LAST_SESSION_DAYS))
        # each pose within half the contract of a common position, so any two differ by less
        C.require_in("rotation angle (deg)", _norm(self.rotation_deg), (0.0, C.MOTION_DEG / 2))
        C.require_in("translation (mm)", _norm(self.translation_mm), (0.0, C.MOTION_MM / 2))
        if self.echo_times_ms:
            C.require_in("number of echoes", len(self.echo_times_ms), C.N_ECHOES)
            for te in self.echo_times_ms:
                C.require_in("echo time (ms)", te, C.ECHO_TIME_MS)

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size along scanner R, A, S."""
        if self.plane == "sagittal":
            return (self.slice_mm, self.inplane_mm, self.inplane_mm)
        return (self.inplane_mm, self.inplane_mm, self.slice_mm)


@dataclass(frozen=True)
class FluorineSpec:
    """The 19F acquisition: coarse voxels, a reference tube outside the body, low SNR."""

    voxel_mm: float
    graft_snr: float                  # peak graft voxel / noise sd at the first follow-up
    tube_offset_mm: tuple[float, float]   # (x, y) of the tube axis from the cord centre line
    tube_radius_mm: float
    tube_atoms_per_mm3: float

    def __post_init__(self) -> None:
        C.require_in("19F voxel_mm", self.voxel_mm, C.F19_VOXEL_MM)
        C.require_in("19F graft_snr", self.graft_snr, C.F19_GRAFT_SNR)


@dataclass(frozen=True)
class PhantomSpec:
    """Everything one simulated subject depends on (besides the noise Generator)."""

    anatomy: AnatomySpec
    tissues: TissueSpec
    injury: InjurySpec
    graft: GraftSpec
    sessions: tuple[SessionSpec, ...]
    fluorine: FluorineSpec | None
    resolution: str

    def __post_init__(self) -> None:
        C.require_choice("resolution", self.resolution, C.RESOLUTIONS)
        if not self.sessions:
            raise PhantomError("a subject needs at least one session; got none")
        days = [s.days_post_transplant for s in self.sessions]
        if days != sorted(days) or len(set(days)) != len(days):
            raise PhantomError(f"session days {days} must be strictly increasing")
        if (self.graft.label == "19f") != (self.fluorine is not None):
            raise PhantomError(f"label {self.graft.label!r} with fluorine spec "
                               f"{self.fluorine!r}: a 19F acquisition goes with label '19f' only")
        needs_echoes = self.graft.label == "spio"
        if any(bool(s.echo_times_ms) != needs_echoes for s in self.sessions):
            raise PhantomError(f"label {self.graft.label!r}: every session needs echo times "
                               "for 'spio' (multi-echo T2*w) and none otherwise")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["tissues"] = {k: dict(v) for k, v in out["tissues"].items()}
        return out


def _norm(values: tuple[float, float, float]) -> float:
    return float(sum(v * v for v in values) ** 0.5)
