"""The Volume: an immutable image whose affine is the single source of geometry.

``array`` is in (x, y, z[, t]) voxel order; ``affine`` maps voxel indices to RAS+
millimetres; ``meta`` is a read-only mapping. Spacing, origin and orientation are
computed from the affine, never stored twice. ``LabelVolume`` holds integer masks
so that resampling picks nearest neighbour for them. Nothing edits a Volume in
place: every operation returns a new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from imaging.errors import InvalidVolumeError, SpaceMismatchError

# Two grids closer than this (mm, on every affine entry) are the same space.
SPACE_TOLERANCE_MM = 1e-3


def _frozen_array(array: Any) -> np.ndarray:
    """Return a read-only array that no outside reference can change.

    The result is a read-only view of a read-only private buffer, so neither
    ``array.flags.writeable = True`` nor a write through the caller's array can
    reach it. An array already held that way (another Volume's) is shared, not copied.
    """
    try:
        arr = np.asarray(array)
    except ValueError as exc:
        raise InvalidVolumeError(f"array cannot be made an ndarray ({exc}); expected a "
                                 "rectangular numeric array") from exc
    base = arr.base
    if (not arr.flags.writeable and isinstance(base, np.ndarray) and base.flags.owndata
            and not base.flags.writeable):
        return arr
    owned = np.array(arr, copy=True)
    owned.flags.writeable = False
    view = owned.view()
    view.flags.writeable = False
    return view


def handed_over(array: np.ndarray) -> np.ndarray:
    """``array`` frozen in place, as a read-only view a Volume shares instead of copying.

    For an array its maker owns and will not write again (a fresh result): freezing it
    spares a copy of every voxel (0.2 s for a 64x320x320x4 float32 probability map on
    these machines). An array that does not own its memory is returned unchanged (a
    Volume then copies it).
    """
    if type(array) is not np.ndarray or not array.flags.owndata:
        return array
    array.flags.writeable = False
    view = array.view()
    view.flags.writeable = False
    return view


def checked_affine(affine: Any) -> np.ndarray:
    """A read-only float64 4x4 voxel-to-RAS affine, or InvalidVolumeError saying what is wrong."""
    try:
        aff = np.array(affine, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidVolumeError(f"affine {affine!r} is not a numeric matrix ({exc}); "
                                 "expected a 4x4 voxel-to-RAS matrix") from exc
    if aff.shape != (4, 4):
        raise InvalidVolumeError(
            f"affine has shape {aff.shape}; expected a 4x4 voxel-to-RAS matrix")
    if not np.all(np.isfinite(aff)):
        raise InvalidVolumeError(
            f"affine has non-finite entries:\n{aff}\n"
            "expected finite numbers; check the file's sform/qform or DICOM geometry tags")
    if not np.allclose(aff[3], [0, 0, 0, 1]):
        raise InvalidVolumeError(f"affine's last row is {aff[3]}; expected [0, 0, 0, 1]")
    det = np.linalg.det(aff[:3, :3])
    if abs(det) < 1e-12:
        raise InvalidVolumeError(
            f"affine is singular (determinant {det:.3g}):\n{aff}\n"
            "expected non-zero voxel spacing on every axis; the header's geometry is broken: "
            "fix its sform/qform (or DICOM geometry tags) before loading")
    return _frozen_array(aff)


def _frozen_value(value: Any) -> Any:
    """Deep read-only copy of a metadata value: dicts become mapping proxies, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen_value(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_frozen_value(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return frozenset(value)
    if isinstance(value, np.ndarray):
        return _frozen_array(value)
    return value


def _frozen_meta(meta: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if meta is not None and not isinstance(meta, Mapping):
        raise InvalidVolumeError(f"meta is a {type(meta).__name__}; expected a mapping (dict)")
    return _frozen_value(dict(meta or {}))


def thawed(value: Any) -> Any:
    """Plain dict/list copy of (frozen) metadata, e.g. for ``json.dumps``."""
    if isinstance(value, Mapping):
        return {k: thawed(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thawed(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


@dataclass(frozen=True, eq=False)
class Volume:
    """An image: voxels, a voxel-to-RAS+ affine in mm, and read-only metadata."""

    array: np.ndarray
    affine: np.ndarray
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arr = _frozen_array(self.array)
        if arr.ndim not in (3, 4):
            raise InvalidVolumeError(
                f"array has {arr.ndim} dimensions (shape {arr.shape}); expected 3 (x, y, z) "
                "or 4 (x, y, z, echo/time)")
        if 0 in arr.shape:
            raise InvalidVolumeError(f"array has an empty axis (shape {arr.shape})")
        self._check_dtype(arr)
        object.__setattr__(self, "array", arr)
        object.__setattr__(self, "affine", checked_affine(self.affine))
        object.__setattr__(self, "meta", _frozen_meta(self.meta))

    @staticmethod
    def _check_dtype(arr: np.ndarray) -> None:
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise InvalidVolumeError(
                f"array dtype {arr.dtype} is not numeric; expected integer, float or bool "
                "voxels (convert with array.astype(numpy.float32))")

    # --- geometry derived from the affine -------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape[:3])  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along each array axis."""
        return tuple(float(s) for s in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))

    @property
    def origin(self) -> tuple[float, float, float]:
        """RAS+ position (mm) of the centre of voxel (0, 0, 0)."""
        return tuple(float(v) for v in self.affine[:3, 3])

    @property
    def orientation(self) -> str:
        """Axis codes (nibabel's meaning: where each array axis points), e.g. 'RAS', 'PSR'."""
        from imaging.orientation import axis_codes
        return axis_codes(self.affine)

    @property
    def voxel_volume_mm3(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    @property
    def n_volumes(self) -> int:
        """Length of the fourth axis (echoes or repetitions); 1 for a 3-D volume."""
        return 1 if self.array.ndim == 3 else int(self.array.shape[3])

    def world_coordinates(self, indices: Any) -> np.ndarray:
        """RAS+ mm of voxel indices given as an (N, 3) array."""
        ijk = np.atleast_2d(np.asarray(indices, dtype=np.float64))
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    # --- new volumes from this one --------------------------------------------------
    def with_array(self, array: Any, meta: Mapping[str, Any] | None = None) -> "Volume":
        """Same geometry, new voxels (spatial shape must match)."""
        arr = np.asarray(array)
        if tuple(arr.shape[:3]) != self.spatial_shape:
            raise InvalidVolumeError(
                f"new array has spatial shape {arr.shape[:3]}; expected {self.spatial_shape} "
                "to keep this volume's affine")
        return type(self)(arr, self.affine, self.meta if meta is None else meta)

    def with_meta(self, **updates: Any) -> "Volume":
        return type(self)(self.array, self.affine, {**self.meta, **updates})

    def as_image(self) -> "Volume":
        return Volume(self.array, self.affine, self.meta)

    def as_labels(self) -> "LabelVolume":
        return LabelVolume(self.array, self.affine, self.meta)

    def echo(self, index: int) -> "Volume":
        """One 3-D volume out of a 4-D one."""
        if self.array.ndim == 3:
            if index != 0:
                raise InvalidVolumeError(f"volume is 3-D; echo index {index} does not exist")
            return self
        return type(self)(self.array[..., index], self.affine, self.meta)

    def reorient(self, codes: str | Sequence[str] = "RAS") -> "Volume":
        """Permute/flip axes so they point as ``codes`` says; voxels stay where they are in space."""
        from imaging.orientation import reorient
        return reorient(self, codes)

    def resample_to_spacing(self, spacing_mm: Sequence[float], order: int | None = None) -> "Volume":
        from imaging.resample import resample_to_spacing
        return resample_to_spacing(self, spacing_mm, order=order)

    def resample_like(self, reference: "Volume", order: int | None = None) -> "Volume":
        from imaging.resample import resample_like
        return resample_like(self, reference, order=order)

    def crop(self, lower: Sequence[int], upper: Sequence[int]) -> "Volume":
        """Voxels lower <= index < upper on each spatial axis, affine moved to match."""
        lo = [int(v) for v in lower]
        hi = [int(v) for v in upper]
        if len(lo) != 3 or len(hi) != 3:
            raise InvalidVolumeError(f"crop bounds {lower}, {upper}: expected three values each")
        for axis, (a, b, n) in enumerate(zip(lo, hi, self.spatial_shape)):
            if not 0 <= a < b <= n:
                raise InvalidVolumeError(
                    f"crop bounds [{a}, {b}) on axis {axis} are outside [0, {n}) or empty")
        arr = self.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        aff = np.array(self.affine)
        aff[:3, 3] = self.affine[:3, :3] @ np.asarray(lo, dtype=np.float64) + self.affine[:3, 3]
        return type(self)(arr, aff, self.meta)

    def same_space(self, other: "Volume", tol_mm: float = SPACE_TOLERANCE_MM) -> bool:
        return (self.spatial_shape == other.spatial_shape
                and bool(np.allclose(self.affine, other.affine, atol=tol_mm, rtol=0)))

    def __repr__(self) -> str:
        kind = type(self).__name__
        sp = "x".join(f"{s:.3g}" for s in self.spacing)
        return (f"{kind}(shape={self.shape}, dtype={self.array.dtype}, spacing={sp} mm, "
                f"orientation={self.orientation}, contrast={self.meta.get('contrast')})")


@dataclass(frozen=True, eq=False, repr=False)
class LabelVolume(Volume):
    """Integer labels (0 background, 1 cord, 2 lesion, 3 graft); nearest-neighbour resampling."""

    @staticmethod
    def _check_dtype(arr: np.ndarray) -> None:
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
            raise InvalidVolumeError(
                f"label array dtype {arr.dtype} is not integer; round or threshold the mask "
                "and pass integer labels")


def require_same_space(a: Volume, b: Volume, tol_mm: float = SPACE_TOLERANCE_MM) -> None:
    """Raise SpaceMismatchError unless ``a`` and ``b`` share shape and affine."""
    if a.same_space(b, tol_mm):
        return
    raise SpaceMismatchError(
        f"volumes are not in the same space:\n  first:  shape {a.spatial_shape}, affine\n"
        f"{np.array2string(a.affine, precision=4)}\n  second: shape {b.spatial_shape}, affine\n"
        f"{np.array2string(b.affine, precision=4)}\n"
        "resample one onto the other first (second.resample_like(first))")
