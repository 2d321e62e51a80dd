"""The phantom contract (DESIGN.md) as numbers: every range a simulated study must respect.

Each entry is (low, high) in the unit its name says. ``sample_spec`` draws inside these
ranges and ``PhantomSpec`` refuses values outside them, so a model trained on one faithful
simulator works on another.
"""

from __future__ import annotations

from typing import Mapping

from imaging.errors import PhantomError

# T2w intensity relative to normal white-matter cord = 1.0, before noise and bias.
T2W_RANGES: Mapping[str, tuple[float, float]] = {
    "csf": (2.0, 2.5),
    "white_matter": (1.0, 1.0),
    "gray_matter": (1.1, 1.1),
    "edema": (1.5, 1.9),
    "cyst": (2.0, 2.4),
    "hemorrhage": (0.3, 0.6),
    "graft": (1.25, 1.45),
    "marrow": (0.9, 1.3),
    "disc_nucleus": (1.8, 2.2),
    "disc_annulus": (0.5, 0.5),
    "fat": (1.6, 1.6),
    "muscle": (0.5, 0.5),
}

# R2* at 3 T, 1/s, for the tissues the contract fixes.
R2STAR_RANGES_PER_S: Mapping[str, tuple[float, float]] = {
    "csf": (3.0, 8.0),
    "white_matter": (25.0, 35.0),
    "gray_matter": (25.0, 35.0),
    "edema": (20.0, 30.0),
    "cyst": (5.0, 10.0),
    "hemorrhage": (80.0, 200.0),
    "graft": (30.0, 40.0),
}

CORD_HALF_WIDTH_MM = (4.5, 5.5)      # cross-section about 10 x 7 mm
CORD_HALF_DEPTH_MM = (3.2, 3.9)
EDEMA_LENGTH_MM = (10.0, 40.0)
CYST_DIAMETER_MM = (2.0, 6.0)
HEMORRHAGE_DIAMETER_MM = (1.0, 4.0)
DEPOSIT_WIDTH_MM = (2.0, 5.0)
DEPOSIT_LENGTH_MM = (4.0, 15.0)

INJECTED_CELLS = (0.5e6, 5.0e6)
INJECTION_VOLUME_UL = (5.0, 50.0)
PACKING_DENSITY_CELLS_PER_MM3 = (1.0e5, 3.0e5)
PLATEAU = (0.0, 0.6)
TAU_DAYS = (3.0, 30.0)
OVERGROWTH_ONSET_DAYS = 60.0
IRON_PG_PER_CELL = (10.0, 30.0)
FLUORINE_ATOMS_PER_CELL = (1.0e11, 1.0e13)
F19_VOXEL_MM = (2.0, 4.0)
F19_GRAFT_SNR = (3.0, 15.0)

INPLANE_MM = (0.3, 1.0)
SLICE_MM = (0.5, 4.0)
CORD_SNR = (10.0, 40.0)
BIAS_AMPLITUDE = (0.0, 0.4)
MOTION_MM = 5.0          # between any two sessions
MOTION_DEG = 5.0
N_ECHOES = (3, 8)
ECHO_TIME_MS = (3.0, 40.0)
LAST_SESSION_DAYS = 380.0   # "follow-ups up to a year" (52 weeks plus scheduling slack)

LABELS = ("none", "spio", "19f")
PLANES = ("sagittal", "axial")
RESOLUTIONS = ("clinical", "research")
SURVIVAL_MODELS = ("decay", "total_loss", "overgrowth")


def require_in(name: str, value: float, bounds: tuple[float, float]) -> None:
    """Raise PhantomError unless low <= value <= high (with a tiny float tolerance)."""
    low, high = bounds
    tol = 1e-9 * max(1.0, abs(low), abs(high))
    if not (low - tol <= value <= high + tol):
        raise PhantomError(f"{name} = {value!r} is outside the phantom contract range "
                           f"[{low}, {high}]; choose a value inside it (see DESIGN.md, "
                           "'The phantom contract')")


def require_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise PhantomError(f"{name} = {value!r}; expected one of {choices}")
