"""The 19F image: coarse voxels, signal proportional to fluorine atoms, a reference tube.

The graft's atoms are spread over the graft (the same deposits, at the session's
calibrated scale) and integrated onto 2-4 mm voxels; a tube of known concentration lies
along the spine outside the body (posterior, beside the midline). Noise is Gaussian (the
real part of a phase-corrected image), so sums over regions are unbiased.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imaging.phantom import anatomy as A
from imaging.phantom.graft import GraftState, deposit_fraction, reach_mm
from imaging.phantom.grid import Grid, axis_aligned_grid, body_extent, supersample, voxel_box
from imaging.phantom.spec import PhantomSpec, SessionSpec

ATOMS_PER_SIGNAL_UNIT = 1.0e15
F19_STEP_MM = 0.4
# body-frame extent of the 19F field of view along x and z, and its front edge (y); the
# back edge is set by the reference tube (behind the neck) plus a margin
F19_FOV_HALF_X_MM = 22.0
F19_FOV_HALF_Z_MM = 36.0
F19_FOV_FRONT_MM = 26.0
F19_FOV_TUBE_MARGIN_MM = 8.0
# controls: the noise is set from a nominal graft filling this fraction of a voxel
NOMINAL_FILL = 0.3


@dataclass(frozen=True)
class CleanFluorine:
    grid: Grid
    atoms: np.ndarray          # fluorine atoms per voxel (graft + tube)
    graft_atoms: np.ndarray    # the graft's share
    tube_mask: np.ndarray      # voxels the tube reaches (bool)
    reference_atoms: float     # atoms of the tube inside the field of view


def f19_grid(spec: PhantomSpec, session: SessionSpec) -> Grid:
    back = spec.fluorine.tube_offset_mm[1] - F19_FOV_TUBE_MARGIN_MM
    lo = np.array([-F19_FOV_HALF_X_MM, back, -F19_FOV_HALF_Z_MM])
    hi = np.array([F19_FOV_HALF_X_MM, F19_FOV_FRONT_MM, F19_FOV_HALF_Z_MM])
    centre = (lo + hi) / 2 + np.asarray(session.fov_shift_mm)
    v = spec.fluorine.voxel_mm
    return axis_aligned_grid(centre, hi - lo, (v, v, v))


def render_fluorine(spec: PhantomSpec, session: SessionSpec, body_from_scanner: np.ndarray,
                    graft: GraftState, graft_scale: float) -> CleanFluorine:
    grid = f19_grid(spec, session)
    graft_atoms = np.zeros(grid.shape, dtype=np.float64)
    if graft.fluorine_atoms > 0 and graft_scale > 0:
        graft_atoms = _graft_atoms(spec, grid, body_from_scanner, graft, graft_scale)
    tube, mask = _tube_atoms(spec, grid, body_from_scanner)
    return CleanFluorine(grid, graft_atoms + tube, graft_atoms, mask, float(tube.sum()))


def _graft_atoms(spec, grid, body_from_scanner, graft: GraftState, scale: float) -> np.ndarray:
    reach = reach_mm(spec.graft, scale) + 1.0
    cy = float(A.centreline_y(np.array(0.0), spec.anatomy))
    lo, hi = voxel_box(grid, body_from_scanner, (-reach, cy - reach, -reach),
                       (reach, cy + reach, reach), pad=0)
    pts = supersample(grid, body_from_scanner, lo, hi, F19_STEP_MM)
    g = deposit_fraction(pts.x, pts.y, pts.z, spec.anatomy, spec.graft, scale, pts.step_mm)
    g = g * A.inside_cord(pts.x, pts.y, pts.z, spec.anatomy)
    out = np.zeros(grid.shape, dtype=np.float64)
    total = g.sum()
    if total > 0:
        out[pts.slices] = pts.average(g) * np.prod(pts.sub) * (graft.fluorine_atoms / total)
    return out


def _tube_atoms(spec, grid, body_from_scanner) -> tuple[np.ndarray, np.ndarray]:
    f = spec.fluorine
    tx, ty = f.tube_offset_mm
    r = f.tube_radius_mm
    zlo, zhi = (v[2] for v in body_extent(grid, body_from_scanner))
    lo, hi = voxel_box(grid, body_from_scanner, (tx - r - 1, ty - r - 1, zlo - 5),
                       (tx + r + 1, ty + r + 1, zhi + 5), pad=0)
    pts = supersample(grid, body_from_scanner, lo, hi, F19_STEP_MM)
    dist = np.hypot(pts.x - tx, pts.y - ty)   # tube along the body's z axis
    frac = np.clip(0.5 - (dist - r) / pts.step_mm, 0.0, 1.0)
    atoms = np.zeros(grid.shape, dtype=np.float64)
    atoms[pts.slices] = pts.average(frac) * grid.voxel_volume_mm3 * f.tube_atoms_per_mm3
    return atoms, atoms > 0


def f19_noise_sd(spec: PhantomSpec, cleans: list[CleanFluorine | None],
                 days: list[float]) -> float:
    """Noise sd (signal units) so the peak graft voxel of the first follow-up has the SNR asked."""
    for clean, day in zip(cleans, days):
        if clean is not None and day >= 0 and clean.graft_atoms.max() > 0:
            return float(clean.graft_atoms.max() / ATOMS_PER_SIGNAL_UNIT / spec.fluorine.graft_snr)
    g = spec.graft
    nominal = (g.packing_density_cells_per_mm3 * g.fluorine_atoms_per_cell
               * spec.fluorine.voxel_mm ** 3 * NOMINAL_FILL)
    return float(nominal / ATOMS_PER_SIGNAL_UNIT / spec.fluorine.graft_snr)
