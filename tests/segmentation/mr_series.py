"""Small single-frame MR series for the DICOM export tests, in axial, sagittal or oblique planes.

Written by ``imaging.dicom.synthetic.write_series`` (full patient / study / series /
frame-of-reference tags, Modality MR, MR Image Storage, shuffled file names), plus
the patient/study tags a SEG or SR copies. ``MrSeries.affine`` is the RAS voxel-to-mm
affine of the series' grid with x = column, y = row, z = slice in generation order
(the layout the DICOM loader returns), so tests can place masks on it without the loader.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from imaging.dicom.synthetic import SeriesSpec, write_series

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


def write_mr_series(folder: Path, *, plane: str = "axial", n_slices: int = 12,
                    rows: int = 32, columns: int = 32, spacing_mm=(0.8, 0.7, 3.0),
                    patient_id: str = "sub-01", study_date: str = "20250101",
                    reverse: bool = False, rng: np.random.Generator | None = None) -> MrSeries:
    """Write one slice per file; ``spacing_mm`` is (row spacing, column spacing, slice step)."""
    rng = rng or np.random.default_rng(zlib.crc32(str(folder).encode()))
    row_dir, col_dir = _directions(plane)
    normal = np.cross(row_dir, col_dir)
    origin = np.array([-12.5, 20.25, 33.0])
    spec = SeriesSpec(
        description="t2_test", orientation=(*row_dir, *col_dir), origin_lps=tuple(origin),
        pixel_spacing_mm=tuple(spacing_mm[:2]), slice_spacing_mm=spacing_mm[2],
        patient_id=patient_id, study_date=study_date,
        extra={"PatientSex": "O", "StudyID": "1", "AccessionNumber": "ACC1",
               "ReferringPhysicianName": "Ref^Doc"})
    image = rng.integers(0, 1000, (columns, rows, n_slices), dtype=np.uint16)
    paths = list(write_series(folder, image, spec, rng))
    series_uid = str(pydicom.dcmread(paths[0], stop_before_pixels=True).SeriesInstanceUID)
    lps = np.eye(4)
    lps[:3, :3] = np.column_stack([row_dir * spacing_mm[1], col_dir * spacing_mm[0],
                                   normal * spacing_mm[2]])
    lps[:3, 3] = origin
    affine = np.eye(4)
    affine[:3] = LPS_FROM_RAS @ lps[:3]
    return MrSeries(paths[::-1] if reverse else paths, affine, (columns, rows, n_slices),
                    series_uid)
