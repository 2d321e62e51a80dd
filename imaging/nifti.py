"""NIfTI through nibabel: read with the affine nibabel chooses (sform/qform), write atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from imaging.atomic import atomic_path
from imaging.bids import contrast_from_name
from imaging.errors import ImageReadError, InvalidVolumeError
from imaging.volume import LabelVolume, Volume


def _sidecar(path: Path) -> dict[str, Any]:
    name = path.name
    stem = name[:-7] if name.endswith(".nii.gz") else name[:-4]
    side = path.with_name(stem + ".json")
    if not side.exists():
        return {}
    try:
        return json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"{side}: JSON sidecar cannot be read ({exc}); fix or remove it") from exc


def _meta_from_sidecar(sidecar: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    te = sidecar.get("EchoTime")
    if te is not None:
        values = te if isinstance(te, list) else [te]
        meta["echo_times_ms"] = tuple(float(v) * 1000.0 for v in values)
    if "RepetitionTime" in sidecar:
        meta["repetition_time_ms"] = float(sidecar["RepetitionTime"]) * 1000.0
    if "MagneticFieldStrength" in sidecar:
        meta["field_strength_t"] = float(sidecar["MagneticFieldStrength"])
    for key, name in (("SeriesDescription", "series_description"), ("Modality", "modality"),
                      ("AcquisitionDateTime", "acquisition_datetime")):
        if key in sidecar:
            meta[name] = sidecar[key]
    return meta


def load_nifti(path: Path) -> Volume:
    """Read a .nii/.nii.gz file as a Volume in its on-disk voxel order with a RAS+ affine."""
    try:
        img = nib.load(str(path))
        array = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for broken files
        raise ImageReadError(f"{path}: cannot be read as NIfTI ({type(exc).__name__}: {exc}); "
                             "the file may be truncated or not NIfTI") from exc
    affine = img.affine
    if array.ndim == 5 and array.shape[3] == 1:
        array = array[:, :, :, 0, :]
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim < 3:
        raise InvalidVolumeError(f"{path}: image has shape {array.shape}; expected a 3-D volume "
                                 "(x, y, z) or 4-D (x, y, z, echo)")
    sidecar = _sidecar(path)
    meta = {"source": str(path), "format": "nifti", "contrast": contrast_from_name(path),
            "original_affine": tuple(map(tuple, np.asarray(affine, dtype=float))),
            "sidecar": sidecar, **_meta_from_sidecar(sidecar)}
    if array.ndim == 4:
        meta["fourth_axis"] = "echo" if len(meta.get("echo_times_ms", ())) == array.shape[3] else "time"
    try:
        return Volume(array, affine, meta)
    except InvalidVolumeError as exc:
        raise InvalidVolumeError(f"{path}: {exc}") from exc


def save_nifti(volume: Volume, path: Path, original_orientation: bool = False) -> Path:
    """Write atomically; labels as int16, images as float32 (or their own integer type)."""
    if original_orientation and "original_affine" in volume.meta:
        from imaging.orientation import axis_codes
        volume = volume.reorient(axis_codes(np.asarray(volume.meta["original_affine"])))
    array = np.asarray(volume.array)
    if isinstance(volume, LabelVolume):
        array = array.astype(np.int16)
    elif array.dtype == np.float64 or array.dtype == bool:
        array = array.astype(np.float32)
    img = nib.Nifti1Image(array, volume.affine)
    img.set_qform(volume.affine, code=1)
    img.set_sform(volume.affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return Path(path)
