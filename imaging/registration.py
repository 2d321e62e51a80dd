"""Rigid registration of one session onto another, driven by the spinal cord.

``register_rigid(fixed, moving, fixed_mask)`` finds the rigid transform that maps
points of the fixed (reference) session to the same anatomy in the moving session
(:class:`imaging.rigid.RigidTransform`, RAS+ mm, ``p_moving = M @ p_fixed``).
SimpleITK does the work: Mattes mutual information (indifferent to contrast and
intensity scale), regular-step gradient descent, three resolution levels. Both
images are first cut to a box around the cord and the metric only looks inside a
dilated cord mask, so the cord, not the shoulders or the table, decides the fit,
and it is fast. Grids may differ in resolution and orientation: everything is
done in physical space. ``apply_transform`` puts a moving volume on a reference
grid (linear for images and probabilities, nearest neighbour for labels).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from imaging.atomic import atomic_path
from imaging.errors import RegistrationError
from imaging.preprocess import mask_box
from imaging.rigid import RigidTransform
from imaging.sitk_bridge import (point_ras_to_lps, ras_matrix_to_lps, sitk_to_volume,
                                 volume_to_sitk)
from imaging.volume import LabelVolume, Volume, require_same_space

__all__ = ["RegistrationSettings", "RigidTransform", "apply_transform", "load_itk_transform",
           "register_rigid", "save_itk_transform"]

log = logging.getLogger(__name__)

_MAX_RESIDUAL_POINTS = 4000


@dataclass(frozen=True)
class RegistrationSettings:
    """How ``register_rigid`` searches. Distances in mm, angles in degrees.

    ``crop``: cut both images to a box (``margin_mm`` around the fixed mask, plus
    ``search_mm`` on the moving side for the motion to be found). ``sampling_fraction``
    below 1 samples the metric at random (then ``register_rigid`` needs an ``rng``).
    ``check_residual``: re-register from a start perturbed by ``perturbation_mm`` /
    ``perturbation_deg`` at the finest level to estimate the residual error. The finest
    level keeps a little smoothing (0.5 mm): without it, linear interpolation of a noisy
    moving image biases mutual information towards grid-aligned positions (0.2-0.4 mm
    errors between two 0.8 mm grids offset by a fraction of a voxel).
    ``retry_residual_mm``: a residual above it means the search settled where a nudge does
    not bring it back (an unstable point, not the optimum): the whole search runs again
    with the learning rate halved, up to ``retries`` times, and the run with the smallest
    residual is kept. (A research phantom session at cord SNR 10 ended rotated 44 degrees,
    residual 5 mm, at learning rate 2 mm; at 1 or 0.5 mm it found the true 2.5 degrees,
    residual 0.03 mm.)
    ``max_residual_mm``: raise RegistrationError when the residual exceeds it (None: report only).
    ``mask_dilation_mm`` 8: the metric sees the cord, the CSF and the edges of the canal,
    which move with the cord; with 4 mm (cord and CSF only, a tube nearly uniform along its
    length and nearly symmetric about it) phantom sessions in another plane with 3-4 mm
    slices ended 2-6 mm off (along the cord, or rolled 30 degrees about it).
    """

    crop: bool = True
    margin_mm: float = 15.0
    search_mm: float = 15.0
    mask_dilation_mm: float = 8.0
    shrink_factors: tuple[int, ...] = (4, 2, 1)
    smoothing_sigmas_mm: tuple[float, ...] = (2.0, 1.0, 0.5)
    histogram_bins: int = 32
    sampling_fraction: float = 1.0
    learning_rate_mm: float = 2.0
    min_step_mm: float = 1e-3
    max_iterations: int = 300
    relaxation: float = 0.5
    check_residual: bool = True
    perturbation_mm: float = 1.0
    perturbation_deg: float = 1.0
    retry_residual_mm: float = 0.5
    retries: int = 2
    max_residual_mm: float | None = None

    def __post_init__(self) -> None:
        if len(self.shrink_factors) != len(self.smoothing_sigmas_mm) or not self.shrink_factors:
            raise RegistrationError(
                f"shrink_factors {self.shrink_factors} and smoothing_sigmas_mm "
                f"{self.smoothing_sigmas_mm}: expected one smoothing per level, at least one level")
        if not 0 < self.sampling_fraction <= 1:
            raise RegistrationError(f"sampling_fraction={self.sampling_fraction}; expected (0, 1]")
        if self.retries < 0:
            raise RegistrationError(f"retries={self.retries}; expected 0 or more")


@dataclass(frozen=True)
class _Problem:
    """The two images as SimpleITK sees them, and where the cord is (RAS mm)."""

    fixed: sitk.Image
    moving: sitk.Image
    metric_mask: sitk.Image | None
    center_ras: np.ndarray
    initial_shift_mm: np.ndarray
    cord_points_ras: np.ndarray


# --- preparing the problem ----------------------------------------------------------------
def _first(volume: Volume) -> Volume:
    return volume.echo(0) if volume.array.ndim == 4 else volume


def _mask_points(mask: Volume) -> np.ndarray:
    idx = np.argwhere(np.asarray(mask.array) > 0)
    step = max(1, len(idx) // _MAX_RESIDUAL_POINTS)
    return mask.world_coordinates(idx[::step])


def _grid_points(volume: Volume) -> np.ndarray:
    steps = [max(1, n // 16) for n in volume.spatial_shape]
    idx = np.stack(np.meshgrid(*[np.arange(0, n, s) for n, s in zip(volume.spatial_shape, steps)],
                               indexing="ij"), axis=-1).reshape(-1, 3)
    return volume.world_coordinates(idx)


def _crop_moving(moving: Volume, fixed_points_ras: np.ndarray, shift_mm: np.ndarray,
                 search_mm: float) -> Volume:
    """The part of ``moving`` that can hold the fixed region after motion up to ``search_mm``."""
    inv = np.linalg.inv(moving.affine)
    ijk = (fixed_points_ras + shift_mm) @ inv[:3, :3].T + inv[:3, 3]
    pad = search_mm / np.asarray(moving.spacing)
    lower = np.maximum(np.floor(ijk.min(axis=0) - pad), 0).astype(int)
    upper = np.minimum(np.ceil(ijk.max(axis=0) + pad) + 1, moving.spatial_shape).astype(int)
    if np.any(upper - lower < 2):
        raise RegistrationError(
            "the fixed cord region does not overlap the moving image "
            f"{Volume.__repr__(moving)} (even allowing "
            f"{search_mm} mm of motion); expected two sessions of the same anatomy — check the "
            "inputs, or pass a moving_mask so the start can be centred on the moving cord")
    return moving.crop(lower, upper)


def _dilated(mask_image: sitk.Image, spacing: Sequence[float], dilation_mm: float) -> sitk.Image:
    radius = [int(math.ceil(dilation_mm / s)) for s in spacing]
    return sitk.BinaryDilate(mask_image > 0, radius) if dilation_mm > 0 else mask_image > 0


def _prepare(fixed: Volume, moving: Volume, fixed_mask: LabelVolume | None,
             moving_mask: LabelVolume | None, settings: RegistrationSettings) -> _Problem:
    fixed, moving = _first(fixed), _first(moving)
    shift = np.zeros(3)
    if fixed_mask is not None:
        require_same_space(fixed, fixed_mask)
        _require_nonempty(fixed_mask, "fixed_mask")
        points = _mask_points(fixed_mask)
        center = points.mean(axis=0)
        if moving_mask is not None:
            require_same_space(moving, moving_mask)
            _require_nonempty(moving_mask, "moving_mask")
            shift = _across_axis(_mask_points(moving_mask).mean(axis=0) - center, points)
        if settings.crop:
            box = mask_box(fixed_mask, settings.margin_mm)
            fixed, fixed_mask = box.crop(fixed), box.crop(fixed_mask)
            corners = fixed.world_coordinates(np.array(np.meshgrid(
                *[[0, n - 1] for n in fixed.spatial_shape], indexing="ij")).reshape(3, -1).T)
            moving = _crop_moving(moving, corners, shift, settings.search_mm)
        metric_mask = _dilated(volume_to_sitk(fixed_mask, dtype=np.uint8), fixed.spacing,
                               settings.mask_dilation_mm)
    else:
        points = _grid_points(fixed)
        center = points.mean(axis=0)
        metric_mask = None
    return _Problem(volume_to_sitk(fixed, dtype=np.float32),
                    volume_to_sitk(moving, dtype=np.float32),
                    metric_mask, center, shift, points)


def _across_axis(shift: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``shift`` without its component along the main axis of ``points`` (the cord).

    Along the cord, a mask's centroid says where each field of view starts and ends (an
    axial stack and a sagittal slab cover different lengths of cord), not where the
    anatomy moved: starting from it put the search 5-20 mm off along the cord, where the
    cord, uniform along its length, gives the metric nothing to climb back with.
    """
    if len(points) < 3:
        return shift
    eigvals, eigvecs = np.linalg.eigh(np.cov(points.T))
    axis = eigvecs[:, int(np.argmax(eigvals))]
    return shift - (shift @ axis) * axis


def _require_nonempty(mask: LabelVolume, name: str) -> None:
    if not np.any(np.asarray(mask.array) > 0):
        raise RegistrationError(f"{name} {Volume.__repr__(mask)} is empty; expected the cord "
                                "mask of that "
                                "session (or None to register the whole field of view)")


# --- running SimpleITK --------------------------------------------------------------------
def _euler(center_ras: np.ndarray, transform: RigidTransform) -> sitk.Euler3DTransform:
    """An ITK Euler transform (LPS) equal to ``transform``, rotating about ``center_ras``."""
    lps = ras_matrix_to_lps(transform.matrix)
    euler = sitk.Euler3DTransform()
    euler.SetCenter(tuple(point_ras_to_lps(center_ras)))
    euler.SetMatrix(tuple(lps[:3, :3].ravel()), 1e-5)
    c = np.asarray(euler.GetCenter())
    euler.SetTranslation(tuple(lps[:3, :3] @ c + lps[:3, 3] - c))
    return euler


def _matrix_ras(euler: sitk.Euler3DTransform) -> np.ndarray:
    rot = np.asarray(euler.GetMatrix()).reshape(3, 3)
    c = np.asarray(euler.GetCenter())
    lps = np.eye(4)
    lps[:3, :3] = rot
    lps[:3, 3] = c + np.asarray(euler.GetTranslation()) - rot @ c
    return ras_matrix_to_lps(lps)


def _method(settings: RegistrationSettings, levels: Sequence[int], sigmas: Sequence[float],
            seed: int | None) -> sitk.ImageRegistrationMethod:
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings.histogram_bins)
    if settings.sampling_fraction < 1:
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentage(settings.sampling_fraction, seed)
    else:
        reg.SetMetricSamplingStrategy(reg.NONE)
    reg.SetInterpolator(sitk.sitkLinear)
    # The precomputed moving-gradient image misleads the optimiser on anisotropic, flipped
    # grids (errors of 5-14 mm on 0.5x0.5x3 mm axial vs 0.8 mm iso phantoms); the gradient
    # computed at each sample point does not (errors < 0.1 mm), and is faster on cropped boxes.
    reg.SetMetricUseMovingImageGradientFilter(False)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=settings.learning_rate_mm, minStep=settings.min_step_mm,
        numberOfIterations=settings.max_iterations, relaxationFactor=settings.relaxation,
        gradientMagnitudeTolerance=1e-8)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(list(levels))
    reg.SetSmoothingSigmasPerLevel(list(sigmas))
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return reg


def _run(problem: _Problem, start: RigidTransform, settings: RegistrationSettings,
         levels: Sequence[int], sigmas: Sequence[float],
         seed: int | None) -> tuple[RigidTransform, int]:
    reg = _method(settings, levels, sigmas, seed)
    if problem.metric_mask is not None:
        reg.SetMetricFixedMask(problem.metric_mask)
    reg.SetInitialTransform(_euler(problem.center_ras, start), inPlace=False)
    iterations = [0]
    reg.AddCommand(sitk.sitkIterationEvent, lambda: iterations.__setitem__(0, iterations[0] + 1))
    try:
        result = reg.Execute(problem.fixed, problem.moving)
    except RuntimeError as exc:
        raise RegistrationError(
            f"rigid registration failed inside SimpleITK ({str(exc).strip().splitlines()[-1]}); "
            "the images may not overlap or the cord mask may be wrong — check that both "
            "sessions show the same anatomy and the fixed mask lies on the cord") from exc
    euler = sitk.Euler3DTransform(sitk.CompositeTransform(result).GetNthTransform(0))
    found = RigidTransform(_matrix_ras(euler), metric_value=reg.GetMetricValue(),
                           iterations=iterations[0],
                           stop_condition=reg.GetOptimizerStopConditionDescription())
    return found, iterations[0]


def _residual_mm(problem: _Problem, found: RigidTransform, settings: RegistrationSettings,
                 seed: int | None) -> float:
    """Mean cord-point distance between ``found`` and a finest-level re-run from a nudged start."""
    nudge = RigidTransform.from_parameters([settings.perturbation_deg] * 3,
                                           [settings.perturbation_mm / math.sqrt(3)] * 3,
                                           problem.center_ras)
    again, _ = _run(problem, nudge.compose(found), settings, settings.shrink_factors[-1:],
                    settings.smoothing_sigmas_mm[-1:], seed)
    return float(again.displacement_mm(problem.cord_points_ras, found).mean())


def _search(problem: _Problem, settings: RegistrationSettings,
            seed: int | None) -> RigidTransform:
    """One multi-resolution search from the centred start, with its residual (NaN unchecked)."""
    start = RigidTransform.from_parameters([0, 0, 0], problem.initial_shift_mm)
    found, iterations = _run(problem, start, settings, settings.shrink_factors,
                             settings.smoothing_sigmas_mm, seed)
    residual = _residual_mm(problem, found, settings, seed) if settings.check_residual else math.nan
    return replace(found, residual_mm=residual, iterations=iterations)


def _search_with_retries(problem: _Problem, settings: RegistrationSettings,
                         seed: int | None) -> RigidTransform:
    """``_search``, again at half the learning rate while the residual stays above
    ``settings.retry_residual_mm`` or SimpleITK fails (the search left the images), up to
    ``settings.retries`` times; the run with the smallest residual."""
    found, failure = None, None
    for attempt in range(settings.retries + 1):
        rate = settings.learning_rate_mm / 2 ** attempt
        if attempt:
            log.info("rigid registration: %s; searching again at learning rate %.2f mm",
                     failure if found is None else
                     f"residual {found.residual_mm:.3f} mm > {settings.retry_residual_mm:g} mm "
                     f"(rotation {found.rotation_deg:.2f} deg)", rate)
        try:
            candidate = _search(problem, replace(settings, learning_rate_mm=rate), seed)
        except RegistrationError as exc:
            failure = exc
            continue
        if found is None or candidate.residual_mm < found.residual_mm:
            found = candidate
        if not found.residual_mm > settings.retry_residual_mm:   # passed, or NaN (unchecked)
            break
    if found is None:
        raise failure
    return found


def register_rigid(fixed: Volume, moving: Volume, fixed_mask: LabelVolume | None = None,
                   moving_mask: LabelVolume | None = None,
                   settings: RegistrationSettings = RegistrationSettings(),
                   rng: np.random.Generator | None = None) -> RigidTransform:
    """Find ``M`` with ``p_moving = M @ p_fixed`` (RAS+ mm) so the moving anatomy matches the fixed.

    ``fixed_mask`` (the cord of the fixed session, same grid as ``fixed``) drives the
    fit: the metric counts only voxels inside it (dilated by ``mask_dilation_mm``) and
    both images are cut to a box around it. Without it the whole field of view is
    used. ``moving_mask`` (optional) centres the start on the moving cord. 4-D inputs
    are registered on their first echo. Raises RegistrationError when SimpleITK fails
    or the residual exceeds ``settings.max_residual_mm``.
    """
    seed = None
    if settings.sampling_fraction < 1:
        if rng is None:
            raise RegistrationError(
                f"sampling_fraction={settings.sampling_fraction} samples the metric at random; "
                "pass rng=numpy.random.default_rng(seed), or use sampling_fraction=1")
        seed = int(rng.integers(1, 2**31 - 1))
    problem = _prepare(fixed, moving, fixed_mask, moving_mask, settings)
    found = _search_with_retries(problem, settings, seed)
    motion = float(found.displacement_mm(problem.cord_points_ras).mean())
    result = replace(found, motion_mm=motion)
    residual = result.residual_mm
    log.info("rigid registration: motion %.2f mm, rotation %.2f deg, residual %.3f mm, "
             "%d iterations (%s)", motion, result.rotation_deg, residual, result.iterations,
             result.stop_condition)
    if settings.max_residual_mm is not None and not residual <= settings.max_residual_mm:
        raise RegistrationError(
            f"registration residual {residual:.2f} mm exceeds max_residual_mm="
            f"{settings.max_residual_mm}; the sessions may not be alignable rigidly (check the "
            "cord masks and image quality) or raise the limit")
    return result


# --- applying a transform -----------------------------------------------------------------
def apply_transform(volume: Volume, transform: RigidTransform, reference: Volume,
                    fill: float = 0.0) -> Volume:
    """``volume`` (moving space) resampled onto ``reference``'s grid through ``transform``.

    Each reference voxel at ``p`` takes the value of ``volume`` at ``transform(p)``:
    linear interpolation for images and probability maps (float32 out), nearest
    neighbour for a LabelVolume (its dtype kept). 4-D volumes are resampled echo by
    echo. Voxels that map outside ``volume`` get ``fill``.
    """
    labels = isinstance(volume, LabelVolume)
    itk = _itk_affine(transform)
    grid = volume_to_sitk(_first(reference), dtype=np.uint8 if labels else np.float32)
    interpolator = sitk.sitkNearestNeighbor if labels else sitk.sitkLinear
    dtype = None if labels else np.float32

    def one(index: int | None) -> np.ndarray:
        source = volume_to_sitk(volume, index=index, dtype=dtype)
        out = sitk.Resample(source, grid, itk, interpolator, fill)
        return sitk_to_volume(out).array

    if volume.array.ndim == 3:
        array = one(None)
    else:
        array = np.stack([one(i) for i in range(volume.n_volumes)], axis=-1)
    return type(volume)(array, reference.affine, volume.meta)


# --- transform files ----------------------------------------------------------------------
def _itk_affine(transform: RigidTransform) -> sitk.AffineTransform:
    """The ITK (LPS) affine transform equal to ``transform``: fixed point -> moving point."""
    lps = ras_matrix_to_lps(transform.matrix)
    itk = sitk.AffineTransform(3)
    itk.SetMatrix(tuple(lps[:3, :3].ravel()))
    itk.SetTranslation(tuple(lps[:3, 3]))
    return itk


def save_itk_transform(transform: RigidTransform, path) -> "Path":
    """Write ``transform`` as an ITK text transform file (atomically).

    ITK conventions (LPS millimetres, fixed/output point -> moving/input point), so
    ITK, ANTs (``antsApplyTransforms -t``), ITK-SNAP and SimpleITK resample the moving
    (reference-session) image onto the fixed session with it. Diagnostics (residual) are
    not part of the format; graftwatch records them in the survival JSON.
    """
    from pathlib import Path
    if Path(path).suffix not in (".txt", ".tfm"):
        raise RegistrationError(f"{path}: an ITK text transform needs a .txt or .tfm name")
    with atomic_path(path) as tmp:
        sitk.WriteTransform(_itk_affine(transform), str(tmp))
    return Path(path)


def load_itk_transform(path) -> RigidTransform:
    """Read an ITK affine/rigid transform file written by ``save_itk_transform`` (or ITK)."""
    try:
        itk = sitk.ReadTransform(str(path))
        if itk.GetName() == "CompositeTransform":
            itk = sitk.CompositeTransform(itk).GetNthTransform(0)
        affine = sitk.AffineTransform(3)
        affine.SetMatrix(itk.GetMatrix())
        affine.SetTranslation(itk.GetTranslation())
        affine.SetCenter(itk.GetCenter())
    except (RuntimeError, AttributeError) as exc:
        raise RegistrationError(f"{path}: cannot read a 3-D ITK affine transform ({exc}); "
                                "expected a file written by save_itk_transform") from exc
    rot = np.asarray(affine.GetMatrix()).reshape(3, 3)
    centre = np.asarray(affine.GetCenter())
    lps = np.eye(4)
    lps[:3, :3] = rot
    lps[:3, 3] = np.asarray(affine.GetTranslation()) + centre - rot @ centre
    return RigidTransform(ras_matrix_to_lps(lps))
