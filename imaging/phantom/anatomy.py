"""Static anatomy: which tissue sits at a body-frame point (mm).

Everything is built in cord-relative coordinates: u = x (left-right), v = c(z) - y
(distance *behind* the curved centre line c(z): positive towards the back, where the
laminae and the skin are; negative towards the vertebral bodies), z along the spine. Cross-sections are
taken in axial planes rather than perpendicular to the curved axis (the centre line
tilts by at most ~10 degrees, which stretches a cross-section by < 2 %).
"""

from __future__ import annotations

import numpy as np

from imaging.phantom.spec import AnatomySpec

TISSUES = ("air", "fat", "muscle", "marrow", "cortex", "disc_annulus", "disc_nucleus", "csf",
           "white_matter", "gray_matter", "cyst", "hemorrhage")
AIR, FAT, MUSCLE, MARROW, CORTEX, ANNULUS, NUCLEUS, CSF, WM, GM, CYST, HEMORRHAGE = range(12)
CORD_TISSUES = (WM, GM, CYST, HEMORRHAGE)

LORDOSIS_SPAN_MM = 80.0
BONY_GAP_MM = 1.5        # dura to bone: epidural fat behind, ligament in front
CORTEX_MM = 0.8
SPINOUS_FRACTION = 0.4   # share of each level's height taken by lamina / spinous process


def centreline_y(z: np.ndarray, a: AnatomySpec) -> np.ndarray:
    """Anterior position (mm) of the cord centre line at height z: a parabolic lordosis."""
    curvature = 8.0 * a.lordosis_sagitta_mm / LORDOSIS_SPAN_MM ** 2
    return curvature * 0.5 * ((z - a.lordosis_apex_z_mm) ** 2
                              - a.lordosis_apex_z_mm ** 2)


def centreline_tangent(z: float, a: AnatomySpec) -> np.ndarray:
    """Unit tangent (x, y, z) of the centre line at height z."""
    curvature = 8.0 * a.lordosis_sagitta_mm / LORDOSIS_SPAN_MM ** 2
    t = np.array([0.0, curvature * (z - a.lordosis_apex_z_mm), 1.0])
    return t / np.linalg.norm(t)


def cord_coordinates(x, y, z, a: AnatomySpec):
    """(U, V): position in the cord cross-section in units of its half-width / half-depth
    (V positive towards the back)."""
    return x / a.cord_half_width_mm, (centreline_y(z, a) - y) / a.cord_half_depth_mm


def inside_cord(x, y, z, a: AnatomySpec) -> np.ndarray:
    U, V = cord_coordinates(x, y, z, a)
    return U * U + V * V <= 1.0


def canal_half_axes(a: AnatomySpec) -> tuple[float, float]:
    """Half-width and half-depth (mm) of the dural sac (cord + CSF)."""
    return a.cord_half_width_mm + a.csf_lateral_mm, a.cord_half_depth_mm + a.csf_ap_mm


def tissue_labels(x: np.ndarray, y: np.ndarray, z: np.ndarray, a: AnatomySpec) -> np.ndarray:
    """int8 tissue index (see TISSUES) at each point.

    Points inside the dural sac (CSF, cord) and outside it are labelled separately, each
    region only evaluating the structures it can hold.
    """
    shape = np.shape(x)
    zf = np.ravel(z).astype(np.float32, copy=False)
    u = np.ravel(x).astype(np.float32, copy=False)
    v = centreline_y(zf, a).astype(np.float32, copy=False) - np.ravel(y).astype(np.float32,
                                                                                copy=False)
    cw, cd = canal_half_axes(a)
    sac = (u / cw) ** 2 + (v / cd) ** 2 <= 1.0
    labels = np.empty(u.shape, dtype=np.int8)
    inside = np.flatnonzero(sac)
    outside = np.flatnonzero(~sac)
    labels[inside] = _sac(u[inside], v[inside], a)
    labels[outside] = _outside_sac(u[outside], v[outside], zf[outside], a)
    return labels.reshape(shape)


def _sac(u, v, a: AnatomySpec) -> np.ndarray:
    U = u / a.cord_half_width_mm
    V = v / a.cord_half_depth_mm
    labels = np.full(u.shape, CSF, dtype=np.int8)
    cord = U * U + V * V <= 1.0
    labels[cord] = WM
    labels[cord & _gray_matter(U, V)] = GM
    return labels


def _outside_sac(u, v, z, a: AnatomySpec) -> np.ndarray:
    labels = np.full(u.shape, MUSCLE, dtype=np.int8)
    _paint_body_wall(labels, u, v, a)
    cw, cd = canal_half_axes(a)
    bony = (u / (cw + BONY_GAP_MM)) ** 2 + (v / (cd + BONY_GAP_MM)) ** 2 <= 1.0
    labels[bony & (v > 0)] = FAT          # epidural fat behind the dura
    labels[bony & (v <= 0)] = ANNULUS     # posterior longitudinal ligament (dark)
    # only points that can be inside a vertebral body (the rest keep their label)
    body_back = -(cd + BONY_GAP_MM)
    front = np.flatnonzero((v < body_back + 0.5) & (v > body_back - a.vertebral_body_depth_mm - 0.5)
                           & (np.abs(u) < a.vertebral_body_width_mm / 2 + 0.5))
    labels[front] = _vertebral_bodies(labels[front], u[front], v[front], z[front], a)
    back = np.flatnonzero(v > cd + BONY_GAP_MM - 0.5)
    labels[back] = _posterior_elements(labels[back], u[back], v[back], z[back], a)
    return labels


def _paint_body_wall(labels, u, v, a: AnatomySpec) -> None:
    labels[v > a.skin_depth_mm - a.subcutaneous_fat_mm] = FAT
    labels[v > a.skin_depth_mm] = AIR
    front = -(canal_half_axes(a)[1] + BONY_GAP_MM + a.vertebral_body_depth_mm)
    labels[(v < front - 5.0) & (v > front - 12.0)] = FAT        # retropharyngeal fat
    labels[(v <= front - 12.0) & (np.abs(u) < 12.0)] = FAT      # oesophagus / pharynx region


def _z_phase(z, a: AnatomySpec) -> np.ndarray:
    return _wrap(z - a.vertebra_phase_mm, a.vertebra_period_mm)


def _wrap(values: np.ndarray, period: float) -> np.ndarray:
    """values modulo period, in [0, period) (floor form: several times faster than np.mod)."""
    return values - np.float32(period) * np.floor(values / np.float32(period))


def _vertebral_bodies(labels, u, v, z, a: AnatomySpec) -> np.ndarray:
    back = -(canal_half_axes(a)[1] + BONY_GAP_MM)
    half_d = a.vertebral_body_depth_mm / 2
    half_w = a.vertebral_body_width_mm / 2
    vc = back - half_d
    # rounded-rectangle cross-section (superellipse of order 4)
    r = np.square(np.square(u / half_w)) + np.square(np.square((v - vc) / half_d))
    inside = r <= 1.0
    phase = _z_phase(z, a)
    disc = phase < a.disc_height_mm
    rim = r > (1.0 - CORTEX_MM / min(half_w, half_d)) ** 4
    endplate = (phase < a.disc_height_mm + 0.6) | (phase > a.vertebra_period_mm - 0.6)
    labels[inside & ~disc] = MARROW
    labels[inside & ~disc & (rim | endplate)] = CORTEX
    mid = np.abs(phase - a.disc_height_mm / 2) < 0.3 * a.disc_height_mm
    nucleus = ((np.abs(u) / half_w) ** 2 + (np.abs(v - vc) / half_d) ** 2 < 0.3) & mid
    labels[inside & disc] = ANNULUS
    labels[inside & disc & nucleus] = NUCLEUS
    return labels


def _posterior_elements(labels, u, v, z, a: AnatomySpec) -> np.ndarray:
    """Laminae and spinous processes behind the canal, one per vertebra, interspinous fat."""
    start = canal_half_axes(a)[1] + BONY_GAP_MM
    length = 0.55 * a.skin_depth_mm
    depth = (v - start) / length
    behind = (depth >= 0) & (depth <= 1)
    half_width = np.where(depth < 0.25, 9.0, 9.0 - 28.0 * (depth - 0.25))
    half_width = np.maximum(half_width, 1.6)
    phase = _wrap(_z_phase(z, a) - a.disc_height_mm - 2.0 + 3.0 * depth, a.vertebra_period_mm)
    level = phase < SPINOUS_FRACTION * a.vertebra_period_mm
    bone = behind & level & (np.abs(u) < half_width)
    labels[behind & (np.abs(u) < 2.0) & ~level] = FAT
    labels[bone] = MARROW
    edge = bone & ((np.abs(u) > half_width - CORTEX_MM) | (phase < CORTEX_MM)
                   | (phase > SPINOUS_FRACTION * a.vertebra_period_mm - CORTEX_MM))
    labels[edge] = CORTEX
    return labels


def _gray_matter(U, V) -> np.ndarray:
    """An H-shaped (butterfly) gray matter: two horns each side joined by a commissure."""
    aU = np.abs(U)
    horns = (aU > 0.15) & (aU < 0.5) & (V > -0.75) & (V < 0.8)
    ventral = ((aU - 0.38) / 0.22) ** 2 + ((V + 0.35) / 0.38) ** 2 < 1.0
    commissure = (aU <= 0.15) & (np.abs(V) < 0.18)
    return horns & (np.abs(aU - 0.32 + 0.1 * V) < 0.14) | ventral | commissure
