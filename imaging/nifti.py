"""NIfTI through nibabel: read with the affine nibabel chooses (sform/qform), write atomically.

A loaded Volume keeps the on-disk voxel order; its metadata says where it came from
(``source``, ``format``, ``original_affine``, ``affine_source``), what contrast the BIDS
name declares, and what the JSON sidecar says (echo and repetition times, field
strength...). ``save_nifti(..., original_orientation=True)`` writes the on-disk axis
order back.
"""

from __future__ import annotations

import json
import logging
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel import openers
from nibabel.arrayproxy import ArrayProxy
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from imaging.atomic import atomic_path
from imaging.bids import contrast_from_name
from imaging.errors import ImageReadError, InvalidVolumeError
from imaging.volume import LabelVolume, Volume, handed_over

log = logging.getLogger(__name__)

_READ_ERRORS = (OSError, EOFError, ValueError, zlib.error, ImageFileError, HeaderDataError)


def sidecar_path(path: Path) -> Path:
    """The BIDS JSON sidecar beside a .nii/.nii.gz file."""
    name = path.name
    stem = name[:-7] if name.lower().endswith(".nii.gz") else path.stem
    return path.with_name(stem + ".json")


def read_sidecar(path: Path) -> dict[str, Any]:
    """The JSON sidecar's fields ({} when there is none)."""
    side = sidecar_path(path)
    if not side.exists():
        return {}
    try:
        text = side.read_text(encoding="utf-8")
        if not text.strip():  # public datasets ship empty placeholder sidecars
            log.warning("%s: JSON sidecar is empty; ignoring it", side)
            return {}
        fields = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"{side}: JSON sidecar cannot be read ({exc}); fix or remove it") from exc
    if not isinstance(fields, dict):
        raise ImageReadError(f"{side}: JSON sidecar holds a {type(fields).__name__}; expected an "
                             "object of BIDS fields; fix or remove it")
    return fields


def _seconds_to_ms(side: Path, key: str, value: Any) -> tuple[float, ...]:
    values = value if isinstance(value, list) else [value]
    try:
        return tuple(float(v) * 1000.0 for v in values)
    except (TypeError, ValueError) as exc:
        raise ImageReadError(f"{side}: {key} is {value!r}; expected seconds (a number or a list "
                             "of numbers)") from exc


def meta_from_sidecar(path: Path, sidecar: dict[str, Any]) -> dict[str, Any]:
    """graftwatch metadata names (units in the name) from BIDS sidecar fields."""
    side = sidecar_path(path)
    meta: dict[str, Any] = {}
    if sidecar.get("EchoTime") is not None:
        meta["echo_times_ms"] = _seconds_to_ms(side, "EchoTime", sidecar["EchoTime"])
    if sidecar.get("RepetitionTime") is not None:
        meta["repetition_time_ms"] = _seconds_to_ms(side, "RepetitionTime",
                                                    sidecar["RepetitionTime"])[0]
    if sidecar.get("MagneticFieldStrength") is not None:
        meta["field_strength_t"] = float(sidecar["MagneticFieldStrength"])
    for key, name in (("SeriesDescription", "series_description"), ("Modality", "modality"),
                      ("AcquisitionDateTime", "acquisition_datetime"),
                      ("AcquisitionTime", "acquisition_time"),
                      ("SeriesInstanceUID", "series_uid"), ("StudyInstanceUID", "study_uid"),
                      ("Manufacturer", "manufacturer")):
        if key in sidecar:
            meta[name] = sidecar[key]
    return meta


def _read_into(opener, buffer: memoryview) -> int:
    done = 0
    while done < len(buffer):
        got = opener.readinto(buffer[done:])
        if not got:
            break
        done += got
    return done


def _owned_voxels(img: nib.Nifti1Image) -> np.ndarray:
    """The voxel array, read straight into memory this module owns and then frozen, so
    the Volume can keep it without a copy. Scaled data are scaled by nibabel (which
    makes a new array); unusual layouts fall back to nibabel's reader."""
    proxy = img.dataobj
    plain = (isinstance(proxy, ArrayProxy) and float(proxy.slope) == 1.0
             and float(proxy.inter) == 0.0 and proxy.dtype.isnative
             and getattr(proxy, "order", "F") in ("C", "F"))
    if not plain:
        arr = np.asanyarray(proxy)
    else:
        arr = np.empty(proxy.shape, dtype=proxy.dtype, order=proxy.order)
        c_view = arr.T if proxy.order == "F" else arr  # C-contiguous view of the same memory
        with openers.ImageOpener(proxy.file_like) as opener:
            opener.seek(proxy.offset)
            got = _read_into(opener, memoryview(c_view).cast("B"))
        if got != arr.nbytes:
            raise EOFError(f"expected {arr.nbytes} bytes of voxels after offset {proxy.offset}, "
                           f"found {got}")
    return handed_over(arr)


def _open(path: Path) -> tuple[nib.Nifti1Image, np.ndarray]:
    """The nibabel image and its (scaled) voxel array, or ImageReadError naming the file."""
    try:
        img = nib.load(str(path), mmap=False)
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise ImageFileError(f"nibabel read it as {type(img).__name__}, not NIfTI")
        array = _owned_voxels(img)
    except _READ_ERRORS as exc:
        raise ImageReadError(f"{path}: cannot be read as NIfTI ({type(exc).__name__}: {exc}); "
                             "the file may be truncated, corrupt or not NIfTI: re-export or "
                             "re-copy it") from exc
    return img, array


def _affine_source(header) -> str:
    """Which header field nibabel took the affine from, as nibabel's get_best_affine does."""
    if int(header["sform_code"]) > 0:
        return "sform"
    if int(header["qform_code"]) > 0:
        return "qform"
    return "pixdim"


def _spatial_array(array: np.ndarray, path: Path) -> np.ndarray:
    """(x, y, z[, n]) from NIfTI's dims: drop NIfTI's unused time axis of vector images
    and trailing singleton axes; refuse 2-D images."""
    if array.ndim == 5 and array.shape[3] == 1:
        array = array[:, :, :, 0, :]
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim < 3:
        raise InvalidVolumeError(
            f"{path}: image is {array.ndim}-D (shape {array.shape}); expected a 3-D volume "
            "(x, y, z) or 4-D (x, y, z, echo). A single 2-D slice cannot be analysed: "
            "export the whole series")
    if array.ndim > 4:
        raise InvalidVolumeError(
            f"{path}: image has shape {array.shape}; expected at most 4 dimensions "
            "(x, y, z, echo/time). Split it into 4-D files first")
    return array


def _fourth_axis(path: Path, n_volumes: int, meta: dict[str, Any]) -> str:
    echoes = meta.get("echo_times_ms", ())
    if len(echoes) == n_volumes and n_volumes > 1:
        return "echo"
    if len(echoes) > 1:
        log.warning("%s: sidecar lists %d echo times for %d volumes; treating the fourth "
                    "axis as time", path, len(echoes), n_volumes)
    return "time"


def load_nifti(path: Path) -> Volume:
    """Read a .nii/.nii.gz file as a Volume in its on-disk voxel order with a RAS+ affine.

    Scaled data (scl_slope/scl_inter) come back as floats, as nibabel scales them.
    """
    path = Path(path)
    img, array = _open(path)
    array = _spatial_array(array, path)
    affine = np.asarray(img.affine, dtype=np.float64)
    sidecar = read_sidecar(path)
    # nibabel moves scl_slope/scl_inter from the header to the array proxy on reading
    slope = float(getattr(img.dataobj, "slope", 1.0))
    inter = float(getattr(img.dataobj, "inter", 0.0))
    meta: dict[str, Any] = {
        "source": str(path), "format": "nifti", "contrast": contrast_from_name(path),
        "original_affine": tuple(map(tuple, affine)), "affine_source": _affine_source(img.header),
        "scaled": slope != 1.0 or inter != 0.0,
        "sidecar": sidecar, **meta_from_sidecar(path, sidecar)}
    if array.ndim == 4:
        meta["fourth_axis"] = _fourth_axis(path, array.shape[3], meta)
    try:
        return Volume(array, affine, meta)
    except InvalidVolumeError as exc:
        raise InvalidVolumeError(f"{path}: {exc}") from exc


def _restore_orientation(volume: Volume) -> Volume:
    original = volume.meta.get("original_affine")
    if original is None:
        log.warning("volume has no meta['original_affine'] (it was not read from a file); "
                    "saving it in its current orientation %s", volume.orientation)
        return volume
    from imaging.orientation import axis_codes
    return volume.reorient(axis_codes(np.asarray(original, dtype=np.float64)))


def save_nifti(volume: Volume, path: Path, original_orientation: bool = False) -> Path:
    """Write atomically; labels as int16, images as float32 (or their own integer type).

    With ``original_orientation`` the axes are put back in the order of the file the
    volume was read from (``meta['original_affine']``), so a volume read, reoriented
    and saved gives back the same array and affine as its source.
    """
    if original_orientation:
        volume = _restore_orientation(volume)
    array = np.asarray(volume.array)
    if isinstance(volume, LabelVolume):
        array = array.astype(np.int16)
    elif array.dtype == np.float64 or array.dtype == bool:
        array = array.astype(np.float32)
    img = nib.Nifti1Image(array, volume.affine)
    img.set_qform(volume.affine, code=1)
    img.set_sform(volume.affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return Path(path)
