"""Write realistic single-frame MR DICOM series with pydicom (phantom export, tests, benchmarks).

The array is given in graftwatch order (x = column, y = row, z = slice[, echo]);
geometry is given in DICOM terms (LPS): image orientation (row direction, then
column direction), the position of the first slice, and pixel spacing as DICOM
orders it (row spacing, column spacing). Slice ``k`` of echo ``e`` lies at
``origin + offset[k] * normal`` with ``normal = row_dir x col_dir``.
``geometry_from_affine`` gives those fields for a graftwatch (RAS) affine, and
``stored_integers`` turns a float image into unsigned 16-bit values with the
RescaleSlope / RescaleIntercept that give it back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid


@dataclass(frozen=True)
class SeriesSpec:
    """Acquisition and geometry tags of a synthetic series (defaults: sagittal T2w TSE)."""

    description: str = "t2_tse_sag"
    orientation: tuple[float, ...] = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    origin_lps: tuple[float, float, float] = (-20.0, -100.0, 80.0)
    pixel_spacing_mm: tuple[float, float] = (0.5, 0.5)
    slice_spacing_mm: float = 3.0
    slice_offsets_mm: tuple[float, ...] | None = None
    echo_times_ms: tuple[float, ...] = (95.0,)
    repetition_time_ms: float = 3500.0
    flip_angle_deg: float = 150.0
    scanning_sequence: str = "SE"
    sequence_variant: str = "SK\\SP"
    sequence_name: str = "*tse2d1_15"
    rescale: tuple[float, float] | None = None
    series_number: int = 3
    series_uid: str = ""
    study_uid: str = ""
    study_date: str = "20250301"
    acquisition_time: str = "101500.000000"
    patient_id: str = "SUBJ01"
    patient_name: str = "Doe^Jane"
    patient_birth_date: str | None = "19800101"    # None: the tag is left out
    extra: dict = field(default_factory=dict)

    def with_uids(self, rng: np.random.Generator) -> "SeriesSpec":
        """Fill empty UIDs with deterministic ones drawn from ``rng``."""
        def uid() -> str:
            return generate_uid(entropy_srcs=[str(rng.integers(0, 2**62))])
        return replace(self, series_uid=self.series_uid or uid(), study_uid=self.study_uid or uid())


def geometry_from_affine(affine: np.ndarray, n_slices: int) -> dict:
    """SeriesSpec geometry fields (orientation, origin_lps, pixel_spacing_mm, slice spacing
    and offsets) of a voxel -> RAS affine whose third axis is perpendicular to the first two.

    The slice normal is row x column direction; slices run along it or against it
    (negative offsets), as the affine says.
    """
    lps = np.diag([-1.0, -1.0, 1.0]) @ np.asarray(affine, dtype=float)[:3]
    spacing = np.linalg.norm(lps[:, :3], axis=0)
    row_dir, col_dir, slice_dir = (lps[:, i] / spacing[i] for i in range(3))
    normal = np.cross(row_dir, col_dir)
    along = float(slice_dir @ normal)
    if abs(abs(along) - 1.0) > 1e-6:
        raise ValueError(f"affine {np.round(affine, 4).tolist()}: slices are not perpendicular "
                         "to the image plane; a single-frame series cannot hold them")
    step = float(spacing[2]) * (1.0 if along > 0 else -1.0)
    return {"orientation": tuple(float(v) for v in (*row_dir, *col_dir)),
            "origin_lps": tuple(float(v) for v in lps[:, 3]),
            "pixel_spacing_mm": (float(spacing[1]), float(spacing[0])),
            "slice_spacing_mm": float(spacing[2]),
            "slice_offsets_mm": tuple(step * k for k in range(n_slices))}


def stored_integers(array: np.ndarray, max_stored: int = 65000
                    ) -> tuple[np.ndarray, tuple[float, float]]:
    """(uint16 values, (slope, intercept)) with value = stored x slope + intercept to within
    slope / 2; the slope has at most 6 significant digits, so it is written exactly."""
    data = np.asarray(array, dtype=np.float64)
    lo, hi = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
    intercept = float(min(math.floor(lo), 0))
    slope = float(f"{max(hi - intercept, 1e-12) / max_stored:.5e}")
    stored = np.clip(np.rint((data - intercept) / slope), 0, 65535).astype(np.uint16)
    return stored, (slope, intercept)


def _slice_offsets(spec: SeriesSpec, n_slices: int) -> np.ndarray:
    if spec.slice_offsets_mm is not None:
        return np.asarray(spec.slice_offsets_mm, dtype=float)
    return np.arange(n_slices) * spec.slice_spacing_mm


def _base_dataset(spec: SeriesSpec, rows: int, columns: int, dtype: np.dtype) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = MRImageStorage
    ds.Modality = "MR"
    ds.Manufacturer = "SIEMENS"
    ds.MagneticFieldStrength = "3"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.SeriesDescription = ds.ProtocolName = spec.description
    ds.SeriesNumber = spec.series_number
    ds.SeriesInstanceUID, ds.StudyInstanceUID = spec.series_uid, spec.study_uid
    ds.FrameOfReferenceUID = spec.study_uid
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = spec.study_date
    ds.StudyTime = ds.AcquisitionTime = spec.acquisition_time
    ds.PatientID, ds.PatientName = spec.patient_id, spec.patient_name
    if spec.patient_birth_date is not None:
        ds.PatientBirthDate = spec.patient_birth_date
    ds.ScanningSequence, ds.SequenceVariant = spec.scanning_sequence, spec.sequence_variant
    ds.SequenceName = spec.sequence_name
    ds.MRAcquisitionType = "2D"
    ds.RepetitionTime = f"{spec.repetition_time_ms:g}"
    ds.FlipAngle = f"{spec.flip_angle_deg:g}"
    ds.SliceThickness = f"{spec.slice_spacing_mm:g}"
    ds.SpacingBetweenSlices = f"{spec.slice_spacing_mm:g}"
    ds.ImageOrientationPatient = [f"{v:.8g}" for v in spec.orientation]
    ds.PixelSpacing = [f"{v:g}" for v in spec.pixel_spacing_mm]
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8 * dtype.itemsize
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if dtype.kind == "i" else 0
    if spec.rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = (f"{v:g}" for v in spec.rescale)
    for keyword, value in spec.extra.items():
        setattr(ds, keyword, value)
    return ds


def _file_meta(sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def write_series(folder: Path, array: np.ndarray, spec: SeriesSpec,
                 rng: np.random.Generator) -> tuple[Path, ...]:
    """Write ``array`` (x, y, z[, echo]) as one file per slice and echo; return the paths.

    File names are shuffled so that nothing can rely on the order of names, and
    InstanceNumber runs against slice position (as on many real scanners).
    """
    data = np.asarray(array)
    if data.ndim == 3:
        data = data[..., None]
    if data.shape[3] != len(spec.echo_times_ms):
        raise ValueError(f"array has {data.shape[3]} echoes; spec has {spec.echo_times_ms}")
    spec = spec.with_uids(rng)
    folder.mkdir(parents=True, exist_ok=True)
    columns, rows, n_slices = data.shape[:3]
    base = _base_dataset(spec, rows, columns, data.dtype)
    row_dir, col_dir = np.asarray(spec.orientation[:3]), np.asarray(spec.orientation[3:])
    normal = np.cross(row_dir, col_dir)
    offsets = _slice_offsets(spec, n_slices)
    names = rng.permutation(n_slices * data.shape[3])
    paths = []
    for e, te in enumerate(spec.echo_times_ms):
        for k in range(n_slices):
            ds = base.copy()
            ds.SOPInstanceUID = generate_uid(entropy_srcs=[spec.series_uid, str(e), str(k)])
            ds.file_meta = _file_meta(ds.SOPInstanceUID)
            ds.EchoTime, ds.EchoNumbers = f"{te:g}", e + 1
            ds.InstanceNumber = e * n_slices + (n_slices - k)
            position = np.asarray(spec.origin_lps) + offsets[k] * normal
            ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
            ds.SliceLocation = f"{float(position @ normal):.6f}"
            ds.PixelData = np.ascontiguousarray(data[:, :, k, e].T).tobytes()
            path = folder / f"IM{names[e * n_slices + k]:05d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
    return tuple(paths)
