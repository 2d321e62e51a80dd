"""One session, noise-free: tissue at sub-voxel points -> voxel signals and truth fractions.

Two tiers: the whole field of view is supersampled at about 1 mm (background anatomy),
and a box that holds the whole cord (so every lesion and graft point) at about 0.3 mm.
The fine tier replaces the coarse one inside its box, so truth fractions are exact. When
there is iron, its R2* spreads beyond the cord: a second fine box, as long as the iron's
reach along the cord and wider by the blooming kernel, is rendered with the iron and
replaces the first inside it (the same sub-voxel points, so the graft is the same).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from imaging.phantom import anatomy as A
from imaging.phantom.contrast import (EDEMA_CHANNEL, GRAFT_CHANNEL, N_CHANNELS, PointTissue,
                                      channel_table, channel_weights, gre_points,
                                      point_values, t2w_points)
from imaging.phantom.graft import GraftState, calibrated_graft, reach_mm, texture
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
                   injury: InjuryState, textures: Textures, per_point: bool = False
                   ) -> CleanSession:
    """Noise-free T2w (and T2*w echoes) and truth fractions of one session.

    All contrasts come from one set of per-voxel channel sums (``contrast.channel_table``);
    ``per_point=True`` evaluates every contrast point by point instead (the slower
    reference the channel sums reproduce to float32 rounding).
    """
    grid = session_grid(session)
    body_from_scanner = np.linalg.inv(scanner_from_body(session))
    echoes = session.echo_times_ms
    table = channel_table(spec.tissues, echoes)
    signals = _signals_per_point if per_point else _signals
    whole = supersample(grid, body_from_scanner, (0, 0, 0), grid.shape, COARSE_STEP_MM)
    coarse = PointTissue(A.tissue_labels(whole.x, whole.y, whole.z, spec.anatomy),
                         None, None, None, None, None)
    images = signals(spec, whole, coarse, table, echoes)
    del whole, coarse
    fine = supersample(grid, body_from_scanner, *_cord_box(grid, body_from_scanner, spec),
                       FINE_STEP_MM)
    pt, scale = _fine_tissue(spec, fine, graft, injury, textures)
    images[fine.slices] = signals(spec, fine, pt, table, echoes)
    fractions = _truth_fractions(grid, fine, pt)
    if graft.iron_ug > 0:
        bloom = supersample(grid, body_from_scanner,
                            *bloom_box(grid, body_from_scanner, spec, fine, pt, scale),
                            FINE_STEP_MM)
        with_iron, _ = _fine_tissue(spec, bloom, graft, injury, textures, iron=True)
        images[bloom.slices] = signals(spec, bloom, with_iron, table, echoes)
    return CleanSession(grid, body_from_scanner, images[..., 0],
                        images[..., 1:] if echoes else None, *fractions, graft_scale=scale)


def _signals(spec: PhantomSpec, points: Supersampled, pt: PointTissue, table: np.ndarray,
             echoes) -> np.ndarray:
    """(box..., 1 + echoes) float32 voxel means from channel sums, iron added point by point."""
    w = channel_weights(pt)
    sums = np.zeros((points.n_voxels, N_CHANNELS))
    sums[:, :len(A.TISSUES)] = points.voxel_sums(w.static, pt.labels, len(A.TISSUES))
    if w.edema is not None:
        where = np.flatnonzero(w.edema)
        sums[:, EDEMA_CHANNEL] = points.voxel_sums(w.edema[where], points=where)[:, 0]
    if w.graft is not None:
        sums[:, GRAFT_CHANNEL] = points.voxel_sums(w.graft, points=pt.graft_index)[:, 0]
    voxels = sums @ table
    if pt.iron_ug_per_mm3 is not None and echoes:
        where = np.flatnonzero(pt.iron_ug_per_mm3)
        rate = np.asarray(echoes) / 1000.0 * spec.graft.relaxivity_per_s_per_ug_per_mm3
        change = np.expm1(-np.outer(pt.iron_ug_per_mm3.ravel()[where], rate))
        change *= point_values(pt, w, table[:, 1:], where)
        n = len(echoes)
        voxels[:, 1:] += points.voxel_sums(change, np.tile(np.arange(n), where.size), n,
                                           points=np.repeat(where, n))
    voxels /= np.prod(points.sub)
    return voxels.astype(np.float32).reshape(*points.box_shape, table.shape[1])


def _signals_per_point(spec: PhantomSpec, points: Supersampled, pt: PointTissue,
                       table: np.ndarray, echoes) -> np.ndarray:
    """The reference: every contrast evaluated at every point, then box-averaged."""
    relax = spec.graft.relaxivity_per_s_per_ug_per_mm3
    images = [points.average(t2w_points(pt, spec.tissues))]
    images += [points.average(gre_points(pt, spec.tissues, te, relax)) for te in echoes]
    return np.stack(images, axis=-1)


def _cord_box(grid: Grid, body_from_scanner: np.ndarray, spec: PhantomSpec,
              margin_mm: float = CORD_MARGIN_MM, z_range=None):
    """Voxel box holding the cord (plus ``margin_mm``) over the field of view, or over
    body-frame heights ``z_range``."""
    a = spec.anatomy
    lo, hi = body_extent(grid, body_from_scanner)
    z_lo, z_hi = (lo[2], hi[2]) if z_range is None else z_range
    cy = A.centreline_y(np.linspace(z_lo, z_hi, 64), a)
    half_w = a.cord_half_width_mm + margin_mm
    half_d = a.cord_half_depth_mm + margin_mm
    return voxel_box(grid, body_from_scanner, (-half_w, cy.min() - half_d, z_lo),
                     (half_w, cy.max() + half_d, z_hi))


def bloom_box(grid: Grid, body_from_scanner: np.ndarray, spec: PhantomSpec,
              fine: Supersampled, pt: PointTissue, scale: float):
    """Voxel box the iron's R2* can reach: the graft's and the injection footprint's extent
    along the cord, and the cord, each widened by the blooming kernel's support."""
    g = spec.graft
    _, injection_scale = calibrated_graft(
        fine.x, fine.y, fine.z, np.isin(pt.labels, A.CORD_TISSUES), spec.anatomy, g,
        g.injection_volume_mm3, fine.point_volume_mm3, fine.step_mm)
    spread = BLOOM_TRUNCATE * g.bloom_sigma_mm + 3 * fine.step_mm
    reach = max(reach_mm(g, s) for s in (scale, injection_scale) if s > 0) + spread
    return _cord_box(grid, body_from_scanner, spec, CORD_MARGIN_MM + spread,
                     (-reach - CORD_MARGIN_MM, reach + CORD_MARGIN_MM))


def _fine_tissue(spec: PhantomSpec, fine: Supersampled, graft: GraftState, injury: InjuryState,
                 textures: Textures, iron: bool = False) -> tuple[PointTissue, float]:
    labels = A.tissue_labels(fine.x, fine.y, fine.z, spec.anatomy)
    in_cord = np.isin(labels, A.CORD_TISSUES)
    edema = apply_injury(labels, fine.x, fine.y, fine.z, spec.anatomy, spec.injury, injury)
    g, scale = calibrated_graft(fine.x, fine.y, fine.z, in_cord, spec.anatomy, spec.graft,
                                graft.volume_mm3, fine.point_volume_mm3, fine.step_mm)
    index = np.flatnonzero(g)
    px, py, pz = (a.ravel()[index] for a in (fine.x, fine.y, fine.z))
    tex = 1.0 + spec.graft.texture_amplitude * texture(px, py, pz, textures.waves_per_mm,
                                                       textures.phases)
    density = iron_density(spec, fine, in_cord, g, graft) if iron else None
    return PointTissue(labels, edema, g, index, tex, density), scale


def iron_density(spec: PhantomSpec, fine: Supersampled, in_cord: np.ndarray, g: np.ndarray,
              graft: GraftState) -> np.ndarray:
    """Iron (ug/mm3): living cells' iron over the graft, released iron over the injection
    footprint, spread by the blooming kernel (integral preserved)."""
    g0, _ = calibrated_graft(fine.x, fine.y, fine.z, in_cord, spec.anatomy, spec.graft,
                             spec.graft.injection_volume_mm3, fine.point_volume_mm3, fine.step_mm)
    dv = fine.point_volume_mm3
    living = graft.living_iron_ug
    g_total, g0_total = float(g.sum(dtype=np.float64)), float(g0.sum(dtype=np.float64))
    if g_total <= 0:
        living = 0.0
    sigma = [spec.graft.bloom_sigma_mm / s for s in fine.step_per_axis_mm]
    margin = np.ceil(BLOOM_TRUNCATE * np.asarray(sigma)).astype(int) + 1
    support = np.unravel_index(np.flatnonzero(g0 if living == 0.0 else (g > 0) | (g0 > 0)),
                               g.shape)
    lo = np.maximum([a.min() for a in support] - margin, 0)
    hi = np.minimum([a.max() for a in support] + margin + 1, g.shape)
    crop = tuple(slice(a, b) for a, b in zip(lo, hi))
    local = (graft.iron_ug - living) / (g0_total * dv) * g0[crop].astype(np.float64)
    if living > 0:
        local += living / (g_total * dv) * g[crop]
    density = np.zeros(g.shape, dtype=np.float32)
    density[crop] = gaussian_filter(local, sigma, mode="constant", truncate=BLOOM_TRUNCATE)
    return density


def _truth_fractions(grid: Grid, fine: Supersampled, pt: PointTissue):
    """Graft, lesion and healthy-cord fractions (exclusive) per voxel, on the whole grid."""
    labels = pt.labels.ravel()
    cord_tissue = (labels == A.WM) | (labels == A.GM)
    oedematous = cord_tissue & (pt.edema.ravel() >= 0.5)
    lesion = (labels == A.CYST) | (labels == A.HEMORRHAGE) | oedematous
    healthy = cord_tissue & ~oedematous
    part = lesion.astype(np.int8) + 2 * healthy.astype(np.int8)     # 0 other, 1, 2
    keep = np.ones(labels.size, dtype=np.float32)
    graft = np.zeros(fine.n_voxels)
    if pt.graft_index is not None and pt.graft_index.size:
        g = pt.graft.ravel()[pt.graft_index]
        keep[pt.graft_index] -= g
        graft = fine.voxel_sums(g, points=pt.graft_index)[:, 0]
    cord = np.flatnonzero(part)
    sums = fine.voxel_sums(keep[cord], part[cord], 3, points=cord)
    out = []
    for values in (graft, sums[:, 1], sums[:, 2]):
        full = np.zeros(grid.shape, dtype=np.float32)
        full[fine.slices] = (values / np.prod(fine.sub)).reshape(fine.box_shape)
        out.append(full)
    return out
