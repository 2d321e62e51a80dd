"""Broken DICOM input: each case raises a graftwatch error naming the file and the way out."""

from __future__ import annotations

import builtins
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import get_decoder
from pydicom.uid import BasicTextSRStorage, ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

from imaging.dicom import load_dicom
from imaging.errors import DicomSeriesError, ImageReadError, MissingDecoderError
from tests.imaging.dicom.conftest import SHAPE


def _rewrite(path: Path, **tags) -> None:
    ds = dcmread(path)
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.save_as(path)


def _by_position(paths) -> list[Path]:
    normal_order = [(float(dcmread(p).SliceLocation), p) for p in paths]
    return [p for _, p in sorted(normal_order)]


def test_empty_folder(tmp_path):
    with pytest.raises(ImageReadError, match=r"empty.*expected DICOM files"):
        load_dicom(tmp_path)


def test_non_image_file_named_explicitly(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("scan notes, not an image\n")
    with pytest.raises(ImageReadError, match=r"notes\.txt: not a DICOM file"):
        load_dicom([notes])


def test_folder_without_any_dicom(tmp_path):
    (tmp_path / "a.json").write_text("{}")
    with pytest.raises(ImageReadError, match=r"none of its 1 file\(s\) is DICOM \(a\.json\)"):
        load_dicom(tmp_path)


def test_truncated_pixel_data_names_the_file(t2_series):
    victim = t2_series[0]
    victim.write_bytes(victim.read_bytes()[:-100])
    with pytest.raises(DicomSeriesError, match=rf"{victim.name}: .*truncated"):
        load_dicom(victim.parent)


def test_truncated_header_names_the_file(tmp_path):
    victim = tmp_path / "cut.dcm"
    victim.write_bytes(Path(get_testdata_file("MR_small.dcm")).read_bytes()[:700])
    with pytest.raises(DicomSeriesError, match=r"cut\.dcm: .*(truncated|corrupt)"):
        load_dicom([victim])


def test_pydicom_truncated_file():
    with pytest.raises(DicomSeriesError, match=r"MR_truncated\.dcm: .*(truncated|corrupt)"):
        load_dicom([get_testdata_file("MR_truncated.dcm")])


def _structured_report(path: Path) -> Path:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = BasicTextSRStorage, generate_uid()
    ds.Modality, ds.StudyInstanceUID, ds.SeriesInstanceUID = "SR", generate_uid(), generate_uid()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_without_pixel_data(tmp_path):
    report = _structured_report(tmp_path / "report.dcm")
    with pytest.raises(DicomSeriesError, match=r"without pixel data only \(Basic Text SR"):
        load_dicom([report])


def test_report_beside_a_series_is_skipped(t2_series):
    _structured_report(t2_series[0].parent / "report.dcm")
    assert load_dicom(t2_series[0].parent).shape == SHAPE


def test_image_header_without_pixel_data(t2_series):
    ds = dcmread(t2_series[0])
    del ds.PixelData
    ds.save_as(t2_series[0])
    with pytest.raises(DicomSeriesError, match=rf"{t2_series[0].name}: holds no pixel data"):
        load_dicom(t2_series[0].parent)


def test_mixed_series_without_a_choice_lists_them(make_series, tmp_path):
    make_series("mix/t2")
    make_series("mix/t1", description="t1_se_sag", echo_times_ms=(10.0,))
    with pytest.raises(DicomSeriesError, match=r"(?s)holds 2 series.*series=.*'t1_se_sag'.*'t2_tse_sag'") as info:
        load_dicom(tmp_path / "mix")
    assert "6 files" in str(info.value)
    volume = load_dicom(tmp_path / "mix", series="T1_SE")
    assert volume.meta["series_description"] == "t1_se_sag"
    by_uid = load_dicom(tmp_path / "mix", series=volume.meta["series_uid"])
    assert by_uid.meta["series_description"] == "t1_se_sag"
    with pytest.raises(DicomSeriesError, match=r"matches 2 series"):
        load_dicom(tmp_path / "mix", series="sag")
    with pytest.raises(DicomSeriesError, match=r"no series matches series='flair'"):
        load_dicom(tmp_path / "mix", series="flair")


def test_missing_slice_names_the_positions(t2_series):
    ordered = _by_position(t2_series)
    ordered[3].unlink()
    with pytest.raises(DicomSeriesError, match=r"unevenly spaced.*between \(-26\.000, -100\.000, 80\.000\) "
                                               r"and \(-32\.000, -100\.000, 80\.000\).*allow_uneven=True"):
        load_dicom(t2_series[0].parent)


def test_gantry_tilt_is_refused(t2_series):
    for k, path in enumerate(_by_position(t2_series)):
        ipp = [float(v) for v in dcmread(path).ImagePositionPatient]
        ipp[2] += 0.5 * k  # slices slide along S while the plane stays sagittal
        _rewrite(path, ImagePositionPatient=[f"{v:.6f}" for v in ipp])
    with pytest.raises(DicomSeriesError, match=r"degrees to the image-plane normal.*tilt"):
        load_dicom(t2_series[0].parent)


def test_non_orthogonal_orientation_is_refused(t2_series):
    _rewrite(t2_series[0], ImageOrientationPatient=["0", "1", "0", "0", "0.5", "-0.866"])
    with pytest.raises(DicomSeriesError, match=rf"{t2_series[0].name}: .*not two orthogonal"):
        load_dicom(t2_series[0].parent)


def test_localizer_in_the_series_is_reported_then_excluded_when_asked(t2_series):
    folder = t2_series[0].parent
    localizer = folder / "localizer.dcm"
    shutil.copy(t2_series[0], localizer)
    _rewrite(localizer, ImageOrientationPatient=["1", "0", "0", "0", "1", "0"],
             SOPInstanceUID=generate_uid())
    with pytest.raises(DicomSeriesError, match=r"localizer\.dcm \(axial\).*exclude_localizers"):
        load_dicom(folder)
    volume = load_dicom(folder, exclude_localizers=True)
    assert volume.shape == SHAPE
    assert volume.meta["excluded_files"] == (str(localizer),)


def test_single_slice_where_a_volume_is_required():
    with pytest.raises(DicomSeriesError, match=r"MR_small\.dcm: .*1 slice\(s\); expected a volume"):
        load_dicom([get_testdata_file("MR_small.dcm")], min_slices=2)


def test_missing_decoder_names_the_package(monkeypatch):
    monkeypatch.setattr(get_decoder(JPEG2000Lossless), "_available", {})
    with pytest.raises(MissingDecoderError, match=r"MR_small_jp2klossless\.dcm: .*JPEG 2000.*"
                                                  r"pip install pylibjpeg pylibjpeg-openjpeg"):
        load_dicom([get_testdata_file("MR_small_jp2klossless.dcm")])


def test_unreadable_file(t2_series, monkeypatch):
    victim = t2_series[0]
    victim.chmod(0)
    if os.geteuid() == 0:  # root reads anything: make open() answer as it does for a user
        real_open = builtins.open

        def guarded_open(file, *args, **kwargs):
            if str(file) == str(victim):
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)
        monkeypatch.setattr(builtins, "open", guarded_open)
    with pytest.raises(ImageReadError, match=rf"{victim.name}: permission denied"):
        load_dicom(victim.parent)
    with pytest.raises(ImageReadError, match=rf"{victim.name}: permission denied"):
        load_dicom([victim])
    victim.chmod(0o644)


def test_missing_path(tmp_path):
    with pytest.raises(ImageReadError, match=r"nothere: no such file or folder"):
        load_dicom(tmp_path / "nothere")


def test_mismatched_matrix_in_one_series(make_series, tmp_path):
    uid = "1.2.826.0.1.3680043.8.498.78"
    make_series("odd/a", series_uid=uid)
    make_series("odd/b", array=np.zeros((8, 10, 6), np.int16), series_uid=uid,
                origin_lps=(-50.0, -100.0, 80.0))
    with pytest.raises(DicomSeriesError, match=r"different size or pixel spacing"):
        load_dicom(tmp_path / "odd")


def test_magnitude_and_phase_in_one_series_are_not_stacked(make_series, tmp_path):
    uid = "1.2.826.0.1.3680043.8.498.79"
    make_series("cplx/mag", series_uid=uid)
    make_series("cplx/pha", series_uid=uid, extra={"ImageType": ["ORIGINAL", "PRIMARY", "P", "ND"]})
    with pytest.raises(DicomSeriesError, match=r"mixes image components \(6 magnitude, 6 phase"):
        load_dicom(tmp_path / "cplx")
    assert load_dicom(sorted((tmp_path / "cplx" / "pha").iterdir())).shape == SHAPE
