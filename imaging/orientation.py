"""Orientation codes and bit-exact reorientation, after nibabel's ``orientations``.

Axis codes mean what nibabel means: the direction each array axis points to
('RAS' = first axis towards Right, second Anterior, third Superior).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from nibabel import orientations as nio

from imaging.errors import OrientationError

VALID_CODES = {"R", "L", "A", "P", "S", "I"}
_PAIRS = (("L", "R"), ("P", "A"), ("I", "S"))


def axis_codes(affine: np.ndarray) -> str:
    """Closest axis codes for an affine (oblique affines get the nearest axes)."""
    return "".join(nio.aff2axcodes(affine, labels=_PAIRS))


def normalise_codes(codes: str | Sequence[str]) -> tuple[str, str, str]:
    """Validate axis codes: three letters, one from each of R/L, A/P, S/I."""
    letters = tuple(str(c).upper() for c in codes)
    if len(letters) != 3 or not set(letters) <= VALID_CODES:
        raise OrientationError(f"axis codes {codes!r}: expected three of R/L, A/P, S/I, e.g. 'RAS'")
    axes = sorted(next(i for i, pair in enumerate(_PAIRS) if c in pair) for c in letters)
    if axes != [0, 1, 2]:
        raise OrientationError(
            f"axis codes {codes!r} name the same anatomical axis twice; expected one of each "
            "of R/L, A/P, S/I")
    return letters  # type: ignore[return-value]


def reorient(volume, codes: str | Sequence[str] = "RAS"):
    """Return a new volume of the same type whose axes point as ``codes`` says.

    Pure permutation and flips of the voxel array (bit-exact, no interpolation);
    the affine changes so every voxel keeps its position in space.
    """
    target = normalise_codes(codes)
    current = nio.io_orientation(volume.affine)
    wanted = nio.axcodes2ornt(target, labels=_PAIRS)
    transform = nio.ornt_transform(current, wanted)
    if np.array_equal(transform, [[0, 1], [1, 1], [2, 1]]):
        return volume
    spatial = volume.spatial_shape
    array = nio.apply_orientation(volume.array, transform)
    affine = volume.affine @ nio.inv_ornt_aff(transform, spatial)
    return type(volume)(np.ascontiguousarray(array), affine, volume.meta)
