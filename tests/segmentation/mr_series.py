"""Small but complete single-frame MR series written with pydicom, for the DICOM export tests.

Each series has full patient / study / series / frame-of-reference tags, Modality MR
and the MR Image Storage SOP class. ``MrSeries.affine`` is the RAS voxel-to-mm
affine of the series' grid with x = column, y = row, z = slice in generation order
(the layout the DICOM loader returns), so tests can place masks on it without the loader.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])

# (row direction, column direction) in LPS for each plane.
PLANES = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
}


@dataclass(frozen=True)
class MrSeries:
    files: list[Path]          # in the order they were written (maybe reversed)
    affine: np.ndarray         # RAS, x = column, y = row, z = generation-order slice
    shape: tuple[int, int, int]
    series_uid: str


def _directions(plane: str) -> tuple[np.ndarray, np.ndarray]:
    if plane in PLANES:
        row, col = PLANES[plane]
        return np.asarray(row), np.asarray(col)
    # oblique: sagittal rotated by 17 degrees about the left-right axis
    angle = np.deg2rad(17.0)
    rot = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)],
                    [0, np.sin(angle), np.cos(angle)]])
    row, col = PLANES["sagittal"]
    return rot @ np.asarray(row), rot @ np.asarray(col)


def _patient_study(ds: Dataset, patient_id: str, study_uid: str, study_date: str) -> None:
    ds.PatientName = f"Test^{patient_id}"
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.StudyID = "1"
    ds.StudyDate = study_date
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC1"
    ds.ReferringPhysicianName = "Ref^Doc"


def write_mr_series(folder: Path, *, plane: str = "axial", n_slices: int = 12,
                    rows: int = 32, columns: int = 32, spacing_mm=(0.8, 0.7, 3.0),
                    patient_id: str = "sub-01", study_date: str = "20250101",
                    reverse: bool = False, rng: np.random.Generator | None = None) -> MrSeries:
    """Write one slice per file; ``spacing_mm`` is (row spacing, column spacing, slice step)."""
    rng = rng or np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    row_dir, col_dir = _directions(plane)
    normal = np.cross(row_dir, col_dir)
    origin = np.array([-12.5, 20.25, 33.0])
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    paths = []
    for k in range(n_slices):
        ds = _slice_dataset(rows, columns, spacing_mm, row_dir, col_dir,
                            origin + k * spacing_mm[2] * normal, rng)
        _patient_study(ds, patient_id, study_uid, study_date)
        ds.SeriesInstanceUID, ds.FrameOfReferenceUID = series_uid, frame_uid
        ds.InstanceNumber = k + 1
        path = folder / f"slice{k:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    lps = np.eye(4)
    lps[:3, :3] = np.column_stack([row_dir * spacing_mm[1], col_dir * spacing_mm[0],
                                   normal * spacing_mm[2]])
    lps[:3, 3] = origin
    affine = np.eye(4)
    affine[:3] = LPS_FROM_RAS @ lps[:3]
    return MrSeries(paths[::-1] if reverse else paths, affine, (columns, rows, n_slices),
                    series_uid)


def _slice_dataset(rows, columns, spacing_mm, row_dir, col_dir, position, rng) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
    ds.SOPClassUID = MR_IMAGE_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = "MR"
    ds.Manufacturer = "Test"
    ds.SeriesNumber = 5
    ds.SeriesDescription = "T2w test"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
    ds.ImagePositionPatient = [round(float(v), 6) for v in position]
    ds.ImageOrientationPatient = [round(float(v), 8) for v in (*row_dir, *col_dir)]
    ds.PixelSpacing = [spacing_mm[0], spacing_mm[1]]
    ds.SliceThickness = spacing_mm[2]
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0
    ds.PixelData = rng.integers(0, 1000, (rows, columns), dtype=np.uint16).tobytes()
    return ds
