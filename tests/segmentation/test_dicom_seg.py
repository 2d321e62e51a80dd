"""DICOM SEG export: write -> read gives the same masks, on any series geometry and file order."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from imaging import load
from imaging.errors import DicomExportError, ImageReadError
from imaging.volume import LabelVolume, Volume
from segmentation import dicom_codes
from segmentation.dicom_seg import read_dicom_seg, write_dicom_seg
from tests.segmentation.mr_series import write_mr_series


def _labels(shape, rng) -> np.ndarray:
    """A cord box with a lesion and a graft inside it, plus scattered single voxels."""
    arr = np.zeros(shape, dtype=np.uint8)
    arr[8:24, 10:22, 1:11] = 1
    arr[12:18, 12:18, 4:8] = 2
    arr[14:17, 13:16, 5:7] = 3
    noise = rng.random(shape) < 0.02
    arr[noise] = rng.integers(1, 4, int(noise.sum()))
    return arr


def _probabilities(shape, rng) -> np.ndarray:
    return rng.dirichlet(np.ones(4), size=shape).astype(np.float32)


@pytest.mark.parametrize("plane", ["axial", "sagittal", "oblique"])
@pytest.mark.parametrize("reverse", [False, True])
def test_binary_round_trip_is_exact(tmp_path: Path, rng, plane: str, reverse: bool) -> None:
    series = write_mr_series(tmp_path / "src", plane=plane, reverse=reverse)
    labels = LabelVolume(_labels(series.shape, rng), series.affine)
    out = write_dicom_seg(labels, series.files, tmp_path / "seg.dcm")

    back = read_dicom_seg(out, labels)
    np.testing.assert_array_equal(back.labels.array, labels.array)
    assert back.probabilities is None
    assert back.referenced_series_uid == series.series_uid


def test_frames_reference_the_source_slice_at_their_position(tmp_path: Path, rng) -> None:
    """highdicom's own source-instance lookup agrees with the slice each frame was taken from."""
    series = write_mr_series(tmp_path / "src", plane="sagittal", reverse=True)
    labels = LabelVolume(_labels(series.shape, rng), series.affine)
    seg = hd.seg.segread(write_dicom_seg(labels, series.files, tmp_path / "seg.dcm"))
    generation_order = series.files[::-1]
    for k in (1, 5, 9):
        uid = pydicom.dcmread(generation_order[k], stop_before_pixels=True).SOPInstanceUID
        frame = seg.get_pixels_by_source_instance([uid], combine_segments=True)[0]
        np.testing.assert_array_equal(frame, labels.array[:, :, k].T)


def test_reoriented_mask_writes_the_same_segments(tmp_path: Path, rng) -> None:
    series = write_mr_series(tmp_path / "src", plane="sagittal")
    labels = LabelVolume(_labels(series.shape, rng), series.affine)
    out = write_dicom_seg(labels.reorient("RAS"), series.files, tmp_path / "seg.dcm")
    np.testing.assert_array_equal(read_dicom_seg(out, labels).labels.array, labels.array)


def test_read_onto_the_grid_of_the_source_files(tmp_path: Path, rng) -> None:
    series = write_mr_series(tmp_path / "src", plane="oblique", reverse=True)
    labels = LabelVolume(_labels(series.shape, rng), series.affine)
    out = write_dicom_seg(labels, series.files, tmp_path / "seg.dcm")
    back = read_dicom_seg(out, series.files)
    np.testing.assert_allclose(back.labels.affine, series.affine, atol=1e-4)
    np.testing.assert_array_equal(back.labels.array, labels.array)


def test_cropped_mask_fills_the_rest_with_background(tmp_path: Path, rng) -> None:
    series = write_mr_series(tmp_path / "src", plane="axial")
    full = LabelVolume(_labels(series.shape, rng), series.affine)
    cropped = full.crop((6, 8, 2), (26, 24, 10))
    out = write_dicom_seg(cropped, series.files, tmp_path / "seg.dcm")
    expected = np.zeros_like(full.array)
    expected[6:26, 8:24, 2:10] = full.array[6:26, 8:24, 2:10]
    np.testing.assert_array_equal(read_dicom_seg(out, full).labels.array, expected)


def test_fractional_round_trip_within_quantisation(tmp_path: Path, rng) -> None:
    series = write_mr_series(tmp_path / "src", plane="sagittal", reverse=True)
    probs = _probabilities(series.shape, rng)
    labels = LabelVolume(np.argmax(probs, axis=-1).astype(np.uint8), series.affine)
    out = write_dicom_seg(labels, series.files, tmp_path / "seg.dcm",
                          probabilities=Volume(probs, series.affine))
    back = read_dicom_seg(out, labels)
    assert hd.seg.segread(out).SegmentationType == "FRACTIONAL"
    error = np.abs(back.probabilities.array[..., 1:] - probs[..., 1:])
    assert error.max() <= 0.5 / 255 + 1e-6
    np.testing.assert_allclose(back.probabilities.array[..., 0], probs[..., 0], atol=1.5 / 255)


def test_segments_carry_coded_terms_and_algorithm(tmp_path: Path, rng) -> None:
    series = write_mr_series(tmp_path / "src")
    labels = LabelVolume(_labels(series.shape, rng), series.affine)
    seg = hd.seg.segread(write_dicom_seg(labels, series.files, tmp_path / "seg.dcm"))
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert seg.PatientID == "sub-01" and seg.Modality == "SEG"
    types = {n: seg.get_segment_description(n).segmented_property_type for n in (1, 2, 3)}
    assert (types[1].value, types[1].scheme_designator) == ("2748008", "SCT")
    assert (types[2].value, types[2].scheme_designator) == ("52988006", "SCT")
    assert (types[3].value, types[3].scheme_designator) == ("246345001", "SCT")
    category = seg.get_segment_description(2).segmented_property_category
    assert category.value == "49755003"
    algorithm = seg.get_segment_description(3).algorithm_identification
    assert algorithm[0].AlgorithmName == "graftwatch" and algorithm[0].AlgorithmVersion


def test_graft_tracking_uid_is_shared_across_timepoints_not_subjects(tmp_path: Path, rng) -> None:
    def graft_tracking(name: str, patient: str, date: str) -> tuple[str, str]:
        series = write_mr_series(tmp_path / name, patient_id=patient, study_date=date)
        labels = LabelVolume(_labels(series.shape, rng), series.affine)
        out = write_dicom_seg(labels, series.files, tmp_path / f"{name}.dcm")
        return read_dicom_seg(out, labels).tracking[dicom_codes.GRAFT_LABEL]

    day7 = graft_tracking("d7", "sub-01", "20250108")
    day30 = graft_tracking("d30", "sub-01", "20250131")
    other = graft_tracking("other", "sub-02", "20250108")
    assert day7 == day30 == ("sub-01 graft", dicom_codes.tracking_uid("sub-01 graft"))
    assert other[1] != day7[1]
    assert day7[1].startswith("2.25.")


def test_tracking_id_override(tmp_path: Path, rng) -> None:
    series = write_mr_series(tmp_path / "src")
    labels = LabelVolume(_labels(series.shape, rng), series.affine)
    out = write_dicom_seg(labels, series.files, tmp_path / "seg.dcm",
                          tracking_ids={3: "trial-7 graft"})
    tracking = read_dicom_seg(out, labels).tracking
    assert tracking[3] == ("trial-7 graft", dicom_codes.tracking_uid("trial-7 graft"))
    assert tracking[1][0] == "sub-01 spinal cord"


def test_half_voxel_shift_is_refused_and_nothing_written(tmp_path: Path, rng) -> None:
    series = write_mr_series(tmp_path / "src", plane="oblique")
    affine = series.affine.copy()
    affine[:3, 3] += 0.5 * affine[:3, 0]
    labels = LabelVolume(_labels(series.shape, rng), affine)
    with pytest.raises(DicomExportError, match="not on the mask's voxel grid"):
        write_dicom_seg(labels, series.files, tmp_path / "seg.dcm")
    assert list(tmp_path.glob("*seg.dcm*")) == []


def test_resampled_mask_is_refused(tmp_path: Path, rng) -> None:
    series = write_mr_series(tmp_path / "src", plane="axial")
    labels = LabelVolume(_labels(series.shape, rng), series.affine).resample_to_spacing((1, 1, 1))
    with pytest.raises(DicomExportError, match="resample it onto the source series"):
        write_dicom_seg(labels, series.files, tmp_path / "seg.dcm")


def test_labels_outside_the_source_slices_are_refused(tmp_path: Path, rng) -> None:
    series = write_mr_series(tmp_path / "src", plane="axial")
    labels = LabelVolume(_labels(series.shape, rng), series.affine)
    with pytest.raises(DicomExportError, match=r"labelled voxels .* lie outside the 6 source"):
        write_dicom_seg(labels, series.files[:6], tmp_path / "seg.dcm")


def test_unknown_label_value_is_refused(tmp_path: Path) -> None:
    series = write_mr_series(tmp_path / "src")
    arr = np.zeros(series.shape, dtype=np.uint8)
    arr[3, 3, 3] = 7
    with pytest.raises(DicomExportError, match=r"values \[7\]"):
        write_dicom_seg(LabelVolume(arr, series.affine), series.files, tmp_path / "seg.dcm")


def test_probabilities_outside_unit_interval_are_refused(tmp_path: Path, rng) -> None:
    series = write_mr_series(tmp_path / "src")
    probs = _probabilities(series.shape, rng) * 1.5
    labels = LabelVolume(np.zeros(series.shape, dtype=np.uint8), series.affine)
    with pytest.raises(DicomExportError, match=r"expected values in \[0, 1\]"):
        write_dicom_seg(labels, series.files, tmp_path / "seg.dcm",
                        probabilities=Volume(probs, series.affine))


def test_source_files_from_two_series_are_refused(tmp_path: Path, rng) -> None:
    a = write_mr_series(tmp_path / "a")
    b = write_mr_series(tmp_path / "b")
    labels = LabelVolume(_labels(a.shape, rng), a.affine)
    with pytest.raises(DicomExportError, match="belong to 2 series"):
        write_dicom_seg(labels, a.files[:6] + b.files[6:], tmp_path / "seg.dcm")


def test_reading_onto_another_series_is_refused(tmp_path: Path, rng) -> None:
    a = write_mr_series(tmp_path / "a")
    b = write_mr_series(tmp_path / "b")
    out = write_dicom_seg(LabelVolume(_labels(a.shape, rng), a.affine), a.files,
                          tmp_path / "seg.dcm")
    with pytest.raises(ImageReadError, match="pass the SEG's source series"):
        read_dicom_seg(out, b.files)


def test_reading_a_non_seg_file_is_refused(tmp_path: Path) -> None:
    series = write_mr_series(tmp_path / "src")
    with pytest.raises(ImageReadError, match="cannot be read as a DICOM SEG"):
        read_dicom_seg(series.files[0], series.files)


def test_empty_mask_round_trips_as_background(tmp_path: Path) -> None:
    series = write_mr_series(tmp_path / "src", n_slices=4)
    labels = LabelVolume(np.zeros(series.shape, dtype=np.uint8), series.affine)
    out = write_dicom_seg(labels, series.files, tmp_path / "seg.dcm")
    back = read_dicom_seg(out, labels)
    assert not back.labels.array.any()
    assert set(back.tracking) == {1, 2, 3}


@pytest.mark.parametrize("plane", ["sagittal", "oblique"])
def test_seg_from_a_volume_loaded_by_imaging_load(tmp_path: Path, rng, plane: str) -> None:
    series = write_mr_series(tmp_path / "src", plane=plane)
    image = load(tmp_path / "src")
    assert image.meta["series_uid"] == series.series_uid
    labels = LabelVolume(_labels(image.spatial_shape, rng), image.affine)
    out = write_dicom_seg(labels, series.files, tmp_path / "seg.dcm")
    np.testing.assert_array_equal(read_dicom_seg(out, image).labels.array, labels.array)
    from_files = read_dicom_seg(out, series.files).labels
    np.testing.assert_allclose(from_files.affine, image.affine, atol=1e-3)
    np.testing.assert_array_equal(from_files.array, labels.array)


def test_source_without_type2_patient_attributes_still_gets_a_seg(tmp_path: Path, rng) -> None:
    """Anonymised series often drop PatientBirthDate/PatientSex: the SEG has them empty."""
    series = write_mr_series(tmp_path / "src", n_slices=4)
    for path in series.files:
        ds = pydicom.dcmread(path)
        for keyword in ("PatientBirthDate", "PatientSex"):
            if keyword in ds:
                delattr(ds, keyword)
        ds.save_as(path)
    assert "PatientBirthDate" not in pydicom.dcmread(series.files[0])
    labels = LabelVolume(_labels(series.shape, rng), series.affine)
    out = write_dicom_seg(labels, series.files, tmp_path / "seg.dcm")
    seg = pydicom.dcmread(out)
    assert seg.PatientBirthDate == "" and seg.PatientSex == ""
    np.testing.assert_array_equal(read_dicom_seg(out, labels).labels.array, labels.array)
    assert "PatientBirthDate" not in pydicom.dcmread(series.files[0])  # sources untouched
