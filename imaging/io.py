"""One entry point to read any scan: ``load(path)`` recognises what it is given.

NIfTI goes through nibabel (``imaging.nifti``), other ITK formats through
SimpleITK (``imaging.itk_io``), DICOM files or folders through pydicom
(``imaging.dicom``). Each reader returns a Volume in RAS+; LPS -> RAS happens in
those readers and nowhere else. Non-finite voxels are handled here, once, by an
explicit policy.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from imaging.errors import ImageReadError, NonFiniteVoxelError
from imaging.volume import LabelVolume, Volume

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd", ".hdr", ".img")
NONFINITE_POLICIES = ("raise", "zero", "keep")


def _has_suffix(path: Path, suffixes: Sequence[str]) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in suffixes)


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise ImageReadError(f"{path}: no such file or folder; check the path")
    if not os.access(path, os.R_OK):
        raise ImageReadError(f"{path}: permission denied; make it readable "
                             "(chmod) or run as a user who can read it")


def load(path: str | os.PathLike | Sequence[str | os.PathLike], series: str | None = None,
         nonfinite: str = "raise") -> Volume:
    """Read a NIfTI/ITK file, a DICOM file, a DICOM folder or a list of DICOM files.

    ``series`` picks one series (UID or description) where a folder holds several.
    ``nonfinite`` says what to do with NaN/inf voxels: "raise" (default), "zero"
    (replace them by 0 and record how many in ``meta["nonfinite_voxels"]``) or "keep".
    """
    if nonfinite not in NONFINITE_POLICIES:
        raise ValueError(f"nonfinite={nonfinite!r}; expected one of {NONFINITE_POLICIES}")
    volume = _read(path, series)
    return apply_nonfinite_policy(volume, nonfinite, source=_describe(path))


def _describe(path) -> str:
    if isinstance(path, (str, os.PathLike)):
        return str(path)
    paths = list(path)
    return f"{len(paths)} files starting {paths[0]}" if paths else "an empty file list"


def _read(path, series: str | None) -> Volume:
    if not isinstance(path, (str, os.PathLike)):
        from imaging.dicom import load_dicom
        paths = [Path(p) for p in path]
        if not paths:
            raise ImageReadError("an empty list of files was given; expected DICOM files")
        for p in paths:
            _check_readable(p)
        return load_dicom(paths, series=series)
    p = Path(path)
    _check_readable(p)
    if p.is_dir():
        from imaging.dicom import load_dicom
        return load_dicom(p, series=series)
    if _has_suffix(p, NIFTI_SUFFIXES):
        from imaging.nifti import load_nifti
        return load_nifti(p)
    if _has_suffix(p, ITK_SUFFIXES):
        from imaging.itk_io import load_itk
        return load_itk(p)
    from imaging.dicom import is_dicom_file, load_dicom
    if is_dicom_file(p):
        return load_dicom([p], series=series)
    raise ImageReadError(
        f"{p}: not a recognised image (expected NIfTI .nii/.nii.gz, NRRD/MHA/MHD, or DICOM); "
        "check that this is the scan you meant")


def apply_nonfinite_policy(volume: Volume, policy: str, source: str) -> Volume:
    """Raise, zero or keep NaN/inf voxels, recording what was done in the metadata."""
    if not np.issubdtype(volume.array.dtype, np.floating):
        return volume
    bad = ~np.isfinite(volume.array)
    count = int(bad.sum())
    if count == 0 or policy == "keep":
        return volume.with_meta(nonfinite_voxels=count) if count else volume
    if policy == "raise":
        n_nan = int(np.isnan(volume.array).sum())
        raise NonFiniteVoxelError(
            f"{source}: {count} voxels are not finite ({n_nan} NaN, {count - n_nan} infinite); "
            "expected finite intensities. Pass nonfinite='zero' (command line: "
            "--nonfinite zero) to replace them by 0, or fix the file")
    arr = np.where(bad, 0, volume.array)
    return volume.with_array(arr, meta={**volume.meta, "nonfinite_voxels": count,
                                        "nonfinite_policy": "zero"})


def save(volume: Volume, path: str | os.PathLike, original_orientation: bool = False) -> Path:
    """Write a Volume (or LabelVolume) to NIfTI, atomically.

    With ``original_orientation`` the on-disk axis order of the source file
    (``meta["original_affine"]``) is restored.
    """
    from imaging.nifti import save_nifti
    return save_nifti(volume, Path(path), original_orientation=original_orientation)


def load_labels(path: str | os.PathLike) -> LabelVolume:
    """Read a mask file as a LabelVolume (rounding float-stored labels, refusing fractions)."""
    vol = load(path)
    arr = vol.array
    if np.issubdtype(arr.dtype, np.floating):
        rounded = np.rint(arr)
        if not np.allclose(arr, rounded, atol=1e-3):
            raise ImageReadError(f"{path}: mask holds fractional values; expected integer labels "
                                 "(load it with imaging.load for a probability map)")
        arr = rounded.astype(np.int16)
    return LabelVolume(arr, vol.affine, vol.meta)
