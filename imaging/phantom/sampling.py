"""Draw a PhantomSpec inside the phantom contract from a numpy Generator."""

from __future__ import annotations

import math

import numpy as np

from imaging import physics
from imaging.phantom import contract as C
from imaging.phantom.spec import (AnatomySpec, Deposit, FluorineSpec, GraftSpec, InjurySpec,
                                  PhantomSpec, SessionSpec, TissueSpec)

# Session schedule: a pre-injection baseline, one early scan, then weeks 4, 12, 26, 52.
FOLLOW_UP_DAYS = (28.0, 84.0, 182.0, 364.0)
MAX_SESSIONS = 2 + len(FOLLOW_UP_DAYS)
# reference tube: a dilution of the label, as a fraction of the packed graft's atoms per mm3
TUBE_TO_GRAFT_CONCENTRATION = (0.5, 1.5)

# Values the contract leaves open (tissues it lists without R2*, proton densities).
FIXED_R2STAR_PER_S = {"marrow": 150.0, "cortex": 400.0, "disc_annulus": 40.0,
                      "disc_nucleus": 20.0, "fat": 45.0, "muscle": 35.0, "air": 0.0}
PROTON_DENSITY = {"air": 0.0, "fat": 0.9, "muscle": 0.6, "marrow": 0.7, "cortex": 0.05,
                  "disc_annulus": 0.5, "disc_nucleus": 0.9, "csf": 1.0, "white_matter": 0.70,
                  "gray_matter": 0.78, "cyst": 1.0, "hemorrhage": 0.6, "edema": 0.9,
                  "graft": 0.8}
EXTRA_T2W = {"air": 0.0, "cortex": 0.1}

# (x, y, z) field of view in mm along scanner R, A, S, per plane and resolution.
FOV_MM = {("sagittal", "clinical"): (34.0, 72.0, 90.0), ("axial", "clinical"): (60.0, 72.0, 48.0),
          ("sagittal", "research"): (24.0, 56.0, 64.0), ("axial", "research"): (40.0, 56.0, 30.0)}
# (in-plane, slice) ranges in mm.
RESOLUTION_MM = {("sagittal", "clinical"): ((0.5, 1.0), (2.5, 4.0)),
                 ("axial", "clinical"): ((0.5, 0.8), (3.0, 4.0)),
                 ("sagittal", "research"): ((0.3, 0.6), (0.8, 1.5)),
                 ("axial", "research"): ((0.3, 0.5), (1.0, 2.5))}


def _u(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def sample_spec(rng: np.random.Generator, label: str = "none", control: bool = False,
                resolution: str = "clinical", plane: str | None = None,
                survival: str | None = None, n_sessions: int = MAX_SESSIONS) -> PhantomSpec:
    """A random subject inside the contract. ``plane=None`` picks a plane per session,
    ``survival=None`` a survival model (decay most often)."""
    C.require_choice("label", label, C.LABELS)
    C.require_choice("resolution", resolution, C.RESOLUTIONS)
    if plane is not None:
        C.require_choice("plane", plane, C.PLANES)
    if survival is not None:
        C.require_choice("survival", survival, C.SURVIVAL_MODELS)
    C.require_in("n_sessions", n_sessions, (1, MAX_SESSIONS))
    anatomy = sample_anatomy(rng)
    tissues, injury = sample_tissues(rng), sample_injury(rng)
    graft = sample_graft(rng, label, control, survival)
    return PhantomSpec(
        anatomy=anatomy, tissues=tissues, injury=injury, graft=graft,
        sessions=sample_sessions(rng, n_sessions, label, resolution, plane),
        fluorine=sample_fluorine(rng, anatomy, graft) if label == "19f" else None,
        resolution=resolution)


def sample_anatomy(rng: np.random.Generator) -> AnatomySpec:
    period = _u(rng, (15.0, 19.0))
    return AnatomySpec(
        cord_half_width_mm=_u(rng, C.CORD_HALF_WIDTH_MM),
        cord_half_depth_mm=_u(rng, C.CORD_HALF_DEPTH_MM),
        csf_lateral_mm=_u(rng, (3.0, 5.0)), csf_ap_mm=_u(rng, (1.8, 3.0)),
        lordosis_sagitta_mm=_u(rng, (1.5, 5.0)), lordosis_apex_z_mm=_u(rng, (-15.0, 15.0)),
        vertebra_period_mm=period, disc_height_mm=_u(rng, (4.0, 5.5)),
        vertebra_phase_mm=_u(rng, (0.0, period)),
        vertebral_body_depth_mm=_u(rng, (14.0, 17.0)),
        vertebral_body_width_mm=_u(rng, (15.0, 19.0)),
        skin_depth_mm=_u(rng, (34.0, 40.0)), subcutaneous_fat_mm=_u(rng, (3.0, 7.0)))


def sample_tissues(rng: np.random.Generator) -> TissueSpec:
    t2w = {name: _u(rng, bounds) for name, bounds in C.T2W_RANGES.items()}
    r2 = {name: _u(rng, bounds) for name, bounds in C.R2STAR_RANGES_PER_S.items()}
    return TissueSpec(t2w={**EXTRA_T2W, **t2w}, r2star_per_s={**FIXED_R2STAR_PER_S, **r2},
                      proton_density=dict(PROTON_DENSITY))


def sample_injury(rng: np.random.Generator) -> InjurySpec:
    initial = _u(rng, (20.0, C.EDEMA_LENGTH_MM[1]))
    n_bleeds = int(rng.integers(1, 3))
    diameters = tuple(_u(rng, C.HEMORRHAGE_DIAMETER_MM) for _ in range(n_bleeds))
    offsets = tuple((_u(rng, (-1.0, 1.0)), _u(rng, (-1.0, 1.0)),
                     float(rng.choice([-1.0, 1.0])) * _u(rng, (2.5, 5.0)))
                    for _ in range(n_bleeds))
    return InjurySpec(
        injury_to_transplant_days=_u(rng, (14.0, 35.0)),
        edema_initial_length_mm=initial,
        edema_final_length_mm=_u(rng, (C.EDEMA_LENGTH_MM[0], initial / 1.5)),
        edema_tau_days=_u(rng, (20.0, 60.0)), edema_radius=_u(rng, (0.6, 1.3)),
        cyst_final_diameter_mm=_u(rng, C.CYST_DIAMETER_MM), cyst_tau_days=_u(rng, (14.0, 45.0)),
        hemorrhage_diameters_mm=diameters, hemorrhage_offsets_mm=offsets)


def _cells_and_density(rng: np.random.Generator) -> tuple[float, float]:
    """Injected cells and packing density whose ratio (injection volume) is 5-50 uL."""
    while True:
        cells = float(round(_u(rng, C.INJECTED_CELLS), -3))
        density = _u(rng, C.PACKING_DENSITY_CELLS_PER_MM3)
        low, high = C.INJECTION_VOLUME_UL
        if low <= cells / density <= high:
            return cells, density


def _deposits(rng: np.random.Generator, volume_mm3: float) -> tuple[Deposit, ...]:
    """1-3 deposits lined up along the cord; sizes inside the contract where the volume allows."""
    best = None
    for _ in range(40):
        n = int(rng.integers(1, 4))
        aspect = _u(rng, (1.5, 4.0))
        width = (6.0 * volume_mm3 / (math.pi * n * aspect)) ** (1.0 / 3.0)
        best = (n, width, aspect * width)
        if C.DEPOSIT_WIDTH_MM[0] <= width <= C.DEPOSIT_WIDTH_MM[1] and \
                C.DEPOSIT_LENGTH_MM[0] <= aspect * width <= C.DEPOSIT_LENGTH_MM[1]:
            break
    n, width, length = best
    z0 = -(n - 1) * 0.6 * length / 2
    return tuple(Deposit(offset_mm=(_u(rng, (-0.6, 0.6)), _u(rng, (-0.5, 0.5)),
                                    z0 + i * 0.6 * length + _u(rng, (-0.5, 0.5))),
                         width_mm=width, length_mm=length) for i in range(n))


def sample_graft(rng: np.random.Generator, label: str, control: bool,
                 survival: str | None) -> GraftSpec:
    cells, density = _cells_and_density(rng)
    if survival is None:
        survival = str(rng.choice(C.SURVIVAL_MODELS, p=[0.7, 0.15, 0.15]))
    plateau = 0.0 if survival == "total_loss" else _u(rng, C.PLATEAU)
    return GraftSpec(
        label=label, control=control, injected_cells=0.0 if control else cells,
        packing_density_cells_per_mm3=density,
        deposits=_deposits(rng, cells / density), survival_model=survival, plateau=plateau,
        tau_days=_u(rng, C.TAU_DAYS), doubling_days=_u(rng, (90.0, 240.0)),
        iron_pg_per_cell=_u(rng, C.IRON_PG_PER_CELL),
        iron_half_life_days=_u(rng, (60.0, 240.0)), bloom_sigma_mm=_u(rng, (0.6, 1.5)),
        relaxivity_per_s_per_ug_per_mm3=physics.DEFAULT_R2STAR_RELAXIVITY_PER_S_PER_UG_PER_MM3,
        fluorine_atoms_per_cell=float(10 ** rng.uniform(11.0, 13.0)),
        texture_amplitude=0.10)


def _session_days(rng: np.random.Generator, n_sessions: int) -> list[float]:
    days = [-_u(rng, (1.0, 14.0)), _u(rng, (1.0, 7.0))]
    days += [d + _u(rng, (-3.0, 3.0)) for d in FOLLOW_UP_DAYS]
    return [float(round(d)) for d in days[:n_sessions]]    # sessions fall on whole days


def _pose(rng: np.random.Generator, limit: float) -> tuple[float, float, float]:
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    return tuple(float(v) for v in direction * rng.uniform(0.0, limit))


def _echo_times_ms(rng: np.random.Generator) -> tuple[float, ...]:
    n = int(rng.integers(C.N_ECHOES[0], C.N_ECHOES[1] + 1))
    first, last = _u(rng, (3.0, 5.0)), _u(rng, (25.0, 40.0))
    return tuple(round(float(t), 2) for t in np.linspace(first, last, n))


def sample_sessions(rng: np.random.Generator, n_sessions: int, label: str, resolution: str,
                    plane: str | None) -> tuple[SessionSpec, ...]:
    echo_times = _echo_times_ms(rng) if label == "spio" else ()
    sessions = []
    for index, day in enumerate(_session_days(rng, n_sessions)):
        this_plane = plane or str(rng.choice(C.PLANES))
        inplane, slab = RESOLUTION_MM[(this_plane, resolution)]
        fov = tuple(float(v) * _u(rng, (0.95, 1.1)) for v in FOV_MM[(this_plane, resolution)])
        sessions.append(SessionSpec(
            session_id=f"ses-{index + 1:02d}", days_post_transplant=day, plane=this_plane,
            inplane_mm=_u(rng, inplane), slice_mm=_u(rng, slab), fov_mm=fov,
            fov_shift_mm=tuple(_u(rng, (-3.0, 3.0)) for _ in range(3)),
            rotation_deg=_pose(rng, C.MOTION_DEG / 2), translation_mm=_pose(rng, C.MOTION_MM / 2),
            bias_amplitude=_u(rng, C.BIAS_AMPLITUDE), cord_snr=_u(rng, C.CORD_SNR),
            echo_times_ms=echo_times))
    return tuple(sessions)


def sample_fluorine(rng: np.random.Generator, anatomy: AnatomySpec,
                    graft: GraftSpec) -> FluorineSpec:
    """The 19F acquisition. The reference tube holds a dilution of the label at
    TUBE_TO_GRAFT_CONCENTRATION of the packed graft's atom concentration (this subject's
    atoms per cell and packing density, so the tube stays a usable reference whatever the
    label load: tied to a fixed 1e12 atoms per cell it fell below 3 noise sd in total when
    the cells held 1e13)."""
    graft_atoms_per_mm3 = graft.fluorine_atoms_per_cell * graft.packing_density_cells_per_mm3
    return FluorineSpec(
        voxel_mm=_u(rng, C.F19_VOXEL_MM), graft_snr=_u(rng, C.F19_GRAFT_SNR),
        tube_offset_mm=(float(rng.choice([-1.0, 1.0])) * _u(rng, (6.0, 14.0)),
                        -(anatomy.skin_depth_mm + _u(rng, (4.0, 8.0)))),
        tube_radius_mm=_u(rng, (1.5, 2.5)),
        tube_atoms_per_mm3=graft_atoms_per_mm3 * _u(rng, TUBE_TO_GRAFT_CONCENTRATION))
