"""One session, noise-free: tissue at sub-voxel points -> voxel signals and truth fractions.

Two tiers: the whole field of view is supersampled at about 1 mm (background anatomy),
and a box that holds the whole cord (so every lesion and graft point) at about 0.25 mm.
The fine tier replaces the coarse one inside its box, so truth fractions are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from imaging.phantom import anatomy as A
from imaging.phantom.contrast import PointTissue, gre_points, t2w_points
from imaging.phantom.graft import GraftState, calibrated_graft, texture
from imaging.phantom.grid import (Grid, Supersampled, body_extent, scanner_from_body,
                                  session_grid, supersample, voxel_box)
from imaging.phantom.injury import InjuryState, apply_injury
from imaging.phantom.spec import PhantomSpec, SessionSpec

COARSE_STEP_MM = 1.0
FINE_STEP_MM = 0.3
CORD_MARGIN_MM = 1.0
BLOOM_TRUNCATE = 3.0        # kernel support, in sigmas


@dataclass(frozen=True)
class Textures:
    """Random plane waves of the graft's mottled texture (drawn once per subject)."""

    waves_per_mm: np.ndarray
    phases: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int = 12) -> "Textures":
        direction = rng.normal(size=(n, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        wavelength = rng.uniform(1.5, 4.0, size=n)
        return cls(direction * (2 * np.pi / wavelength)[:, None], rng.uniform(0, 2 * np.pi, n))


@dataclass(frozen=True)
class CleanSession:
    """Noise- and bias-free images and truth fractions on a session's grid."""

    grid: Grid
    body_from_scanner: np.ndarray
    t2w: np.ndarray
    gre: np.ndarray | None          # (x, y, z, echo)
    graft: np.ndarray
    lesion: np.ndarray
    cord: np.ndarray
    graft_scale: float              # deposit scale (1 = nominal sizes) on this day


def render_session(spec: PhantomSpec, session: SessionSpec, graft: GraftState,
                   injury: InjuryState, textures: Textures) -> CleanSession:
    grid = session_grid(session)
    body_from_scanner = np.linalg.inv(scanner_from_body(session))
    whole = supersample(grid, body_from_scanner, (0, 0, 0), grid.shape, COARSE_STEP_MM)
    coarse = PointTissue(A.tissue_labels(whole.x, whole.y, whole.z, spec.anatomy),
                         None, None, None, None, None)
    t2w = whole.average(t2w_points(coarse, spec.tissues))
    echoes = session.echo_times_ms
    relax = spec.graft.relaxivity_per_s_per_ug_per_mm3
    gre = [whole.average(gre_points(coarse, spec.tissues, te, relax)) for te in echoes]
    del whole, coarse
    fine = supersample(grid, body_from_scanner, *_cord_box(grid, body_from_scanner, spec),
                       FINE_STEP_MM)
    pt, scale = _fine_tissue(spec, fine, graft, injury, textures)
    box = fine.slices
    t2w[box] = fine.average(t2w_points(pt, spec.tissues))
    for image, te in zip(gre, echoes):
        image[box] = fine.average(gre_points(pt, spec.tissues, te, relax))
    fractions = _truth_fractions(grid, fine, pt)
    return CleanSession(grid, body_from_scanner, t2w, np.stack(gre, axis=-1) if gre else None,
                        *fractions, graft_scale=scale)


def _cord_box(grid: Grid, body_from_scanner: np.ndarray, spec: PhantomSpec):
    a = spec.anatomy
    lo, hi = body_extent(grid, body_from_scanner)
    zs = np.linspace(lo[2], hi[2], 64)
    cy = A.centreline_y(zs, a)
    margin = CORD_MARGIN_MM
    if spec.graft.label == "spio":   # room for the blooming kernel to spread the iron
        margin += BLOOM_TRUNCATE * spec.graft.bloom_sigma_mm
    half_w = a.cord_half_width_mm + margin
    half_d = a.cord_half_depth_mm + margin
    return voxel_box(grid, body_from_scanner, (-half_w, cy.min() - half_d, lo[2]),
                     (half_w, cy.max() + half_d, hi[2]))


def _fine_tissue(spec: PhantomSpec, fine: Supersampled, graft: GraftState, injury: InjuryState,
                 textures: Textures) -> tuple[PointTissue, float]:
    labels = A.tissue_labels(fine.x, fine.y, fine.z, spec.anatomy)
    in_cord = np.isin(labels, A.CORD_TISSUES)
    edema = apply_injury(labels, fine.x, fine.y, fine.z, spec.anatomy, spec.injury, injury)
    g, scale = calibrated_graft(fine.x, fine.y, fine.z, in_cord, spec.anatomy, spec.graft,
                                graft.volume_mm3, fine.point_volume_mm3, fine.step_mm)
    index = np.flatnonzero(g)
    px, py, pz = (a.ravel()[index] for a in (fine.x, fine.y, fine.z))
    tex = 1.0 + spec.graft.texture_amplitude * texture(px, py, pz, textures.waves_per_mm,
                                                       textures.phases)
    iron = iron_density(spec, fine, in_cord, g, graft) if graft.iron_ug > 0 else None
    return PointTissue(labels, edema, g, index, tex, iron), scale


def iron_density(spec: PhantomSpec, fine: Supersampled, in_cord: np.ndarray, g: np.ndarray,
              graft: GraftState) -> np.ndarray:
    """Iron (ug/mm3): living cells' iron over the graft, released iron over the injection
    footprint, spread by the blooming kernel (integral preserved)."""
    g0, _ = calibrated_graft(fine.x, fine.y, fine.z, in_cord, spec.anatomy, spec.graft,
                             spec.graft.injection_volume_mm3, fine.point_volume_mm3, fine.step_mm)
    dv = fine.point_volume_mm3
    living = graft.living_iron_ug
    density = np.zeros(g.shape, dtype=np.float64)
    if g.sum() > 0:
        density += living * g / (g.sum() * dv)
    else:
        living = 0.0
    density += (graft.iron_ug - living) * g0 / (g0.sum() * dv)
    sigma = [spec.graft.bloom_sigma_mm / s for s in fine.step_per_axis_mm]
    support = np.argwhere(density > 0)
    margin = np.ceil(BLOOM_TRUNCATE * np.asarray(sigma)).astype(int) + 1
    lo = np.maximum(support.min(axis=0) - margin, 0)
    hi = np.minimum(support.max(axis=0) + margin + 1, density.shape)
    crop = tuple(slice(a, b) for a, b in zip(lo, hi))
    density[crop] = gaussian_filter(density[crop], sigma, mode="constant",
                                    truncate=BLOOM_TRUNCATE)
    return density.astype(np.float32)


def _truth_fractions(grid: Grid, fine: Supersampled, pt: PointTissue):
    labels = pt.labels
    cord_tissue = (labels == A.WM) | (labels == A.GM)
    oedematous = cord_tissue & (pt.edema >= 0.5)
    lesion = (labels == A.CYST) | (labels == A.HEMORRHAGE) | oedematous
    healthy = cord_tissue & ~oedematous
    keep = 1.0 - pt.graft
    out = []
    for values in (pt.graft, lesion * keep, healthy * keep):
        full = np.zeros(grid.shape, dtype=np.float32)
        full[fine.slices] = fine.average(values.astype(np.float32))
        out.append(full)
    return out
