"""NIfTI reading and writing: nibabel's affine choice, metadata, broken files, round trips."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from imaging.errors import ImageReadError, InvalidVolumeError
from imaging.nifti import load_nifti, save_nifti
from imaging.volume import LabelVolume, Volume
from tests.conftest import shared_path


def _psr_affine() -> np.ndarray:
    """First axis towards P, second S, third R; 0.8 x 0.9 x 3 mm."""
    aff = np.zeros((4, 4))
    aff[1, 0], aff[2, 1], aff[0, 2] = -0.8, 0.9, 3.0
    aff[:, 3] = (-20.0, 30.0, -40.0, 1.0)
    return aff


def _write(path: Path, array: np.ndarray, affine: np.ndarray, sidecar: dict | None = None) -> Path:
    nib.save(nib.Nifti1Image(array, affine), str(path))
    if sidecar is not None:
        name = path.name.replace(".nii.gz", ".json").replace(".nii", ".json")
        path.with_name(name).write_text(json.dumps(sidecar))
    return path


# --- which affine --------------------------------------------------------------------------------
def test_sform_wins_over_qform_as_in_nibabel(tmp_path):
    img = nib.Nifti1Image(np.zeros((3, 4, 5), np.float32), np.eye(4))
    qform = np.diag([2.0, 2.0, 2.0, 1.0])
    sform = _psr_affine()
    img.set_qform(qform, code=1)
    img.set_sform(sform, code=2)
    path = tmp_path / "both.nii"
    nib.save(img, str(path))
    vol = load_nifti(path)
    np.testing.assert_allclose(vol.affine, sform, atol=1e-6)
    np.testing.assert_allclose(vol.affine, nib.load(str(path)).affine)
    assert vol.meta["affine_source"] == "sform" and vol.orientation == "PSR"


@pytest.mark.parametrize("qform_code, expected_source", [(1, "qform"), (0, "pixdim")])
def test_qform_or_pixdim_when_sform_is_unset(tmp_path, qform_code, expected_source):
    img = nib.Nifti1Image(np.zeros((3, 4, 5), np.float32), None)
    img.set_qform(np.diag([-1.5, 2.0, 2.5, 1.0]), code=qform_code)
    img.set_sform(np.diag([9.0, 9.0, 9.0, 1.0]), code=0)
    path = tmp_path / "q.nii"
    nib.save(img, str(path))
    vol = load_nifti(path)
    assert vol.meta["affine_source"] == expected_source
    np.testing.assert_allclose(vol.affine, nib.load(str(path)).affine)
    assert not np.allclose(vol.affine[:3, :3], np.diag([9.0, 9.0, 9.0]))


# --- metadata ------------------------------------------------------------------------------------
def test_multi_echo_series_with_sidecar(tmp_path, rng):
    array = rng.random((5, 6, 4, 3)).astype(np.float32)
    path = _write(tmp_path / "sub-01_ses-02_T2starw.nii.gz", array, _psr_affine(),
                  {"EchoTime": [0.003, 0.006, 0.009], "RepetitionTime": 0.5,
                   "MagneticFieldStrength": 3, "SeriesDescription": "me_gre"})
    vol = load_nifti(path)
    np.testing.assert_array_equal(vol.array, array)
    assert vol.meta["fourth_axis"] == "echo"
    np.testing.assert_allclose(vol.meta["echo_times_ms"], (3.0, 6.0, 9.0))
    assert vol.meta["repetition_time_ms"] == pytest.approx(500.0)
    assert vol.meta["field_strength_t"] == 3.0
    assert vol.meta["series_description"] == "me_gre"
    assert vol.meta["contrast"] == "T2starw" and vol.meta["source"] == str(path)
    assert vol.meta["sidecar"]["RepetitionTime"] == 0.5
    np.testing.assert_allclose(np.asarray(vol.meta["original_affine"]), _psr_affine(), atol=1e-6)


def test_echo_count_mismatch_means_time_axis(tmp_path):
    path = _write(tmp_path / "sub-01_T2starw.nii", np.zeros((3, 3, 3, 4), np.float32),
                  np.eye(4), {"EchoTime": [0.003, 0.006]})
    assert load_nifti(path).meta["fourth_axis"] == "time"


@pytest.mark.parametrize("name, contrast", [("sub-1_ses-2_acq-19F_MRI.nii.gz", "19F"),
                                            ("sub-1_T1w.nii.gz", "T1w"),
                                            ("sub-unf01_T2star.nii.gz", "T2starw"),
                                            ("anything.nii.gz", None)])
def test_contrast_from_the_bids_name(tmp_path, name, contrast):
    path = _write(tmp_path / name, np.zeros((2, 2, 2), np.int16), np.eye(4))
    assert load_nifti(path).meta["contrast"] == contrast


def test_scaled_integers_come_back_as_scaled_floats(tmp_path):
    raw = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    img = nib.Nifti1Image(raw, np.eye(4))
    img.header.set_slope_inter(2.5, -1.0)
    path = tmp_path / "scaled.nii.gz"
    nib.save(img, str(path))
    vol = load_nifti(path)
    assert np.issubdtype(vol.array.dtype, np.floating) and vol.meta["scaled"]
    np.testing.assert_allclose(vol.array, raw * 2.5 - 1.0)


@pytest.mark.parametrize("endianness", ["<", ">"])
@pytest.mark.parametrize("name", ["plain.nii", "plain.nii.gz"])
def test_voxels_equal_nibabel_and_are_frozen(tmp_path, rng, endianness, name):
    array = rng.random((5, 4, 3, 2)).astype(np.float32)
    path = tmp_path / name
    nib.save(nib.Nifti1Image(array, np.eye(4), nib.Nifti1Header(endianness=endianness)), str(path))
    vol = load_nifti(path)
    np.testing.assert_array_equal(vol.array, np.asanyarray(nib.load(str(path)).dataobj))
    with pytest.raises(ValueError):
        vol.array.flags.writeable = True


def test_nifti_vector_layout_becomes_4d(tmp_path):
    path = _write(tmp_path / "vec.nii", np.ones((3, 3, 3, 1, 2), np.float32), np.eye(4))
    assert load_nifti(path).shape == (3, 3, 3, 2)


# --- broken input --------------------------------------------------------------------------------
def test_truncated_file_is_refused_by_name(tmp_path, rng):
    path = _write(tmp_path / "cut.nii.gz", rng.random((20, 20, 20)).astype(np.float32), np.eye(4))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.nii\.gz: cannot be read as NIfTI .*truncated"):
        load_nifti(path)


def test_truncated_uncompressed_file_is_refused(tmp_path, rng):
    path = _write(tmp_path / "cut.nii", rng.random((20, 20, 20)).astype(np.float32), np.eye(4))
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ImageReadError, match=r"cut\.nii: cannot be read"):
        load_nifti(path)


@pytest.mark.parametrize("name, content", [("notes.nii", b"this is not an image" * 30),
                                           ("notes.nii.gz", gzip.compress(b"plain text" * 50, mtime=0)),
                                           ("empty.nii", b"")])
def test_non_nifti_content_is_refused(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=rf"{name}: cannot be read as NIfTI"):
        load_nifti(path)


def _with_sform(tmp_path: Path, name: str, row_z) -> Path:
    img = nib.Nifti1Image(np.zeros((3, 3, 3), np.float32), np.eye(4))
    hdr = img.header
    hdr["srow_z"] = row_z
    hdr["sform_code"] = 1
    hdr["qform_code"] = 0
    path = tmp_path / name
    nib.save(nib.Nifti1Image(img.dataobj, None, hdr), str(path))
    return path


def test_singular_affine_names_the_file(tmp_path):
    path = _with_sform(tmp_path, "flat.nii", [0, 0, 0, 5])
    with pytest.raises(InvalidVolumeError, match=r"(?s)flat\.nii: affine is singular"):
        load_nifti(path)


def test_non_finite_affine_names_the_file(tmp_path):
    path = _with_sform(tmp_path, "nan.nii", [0, 0, 1, np.nan])
    with pytest.raises(InvalidVolumeError, match=r"(?s)nan\.nii: affine has non-finite"):
        load_nifti(path)


@pytest.mark.parametrize("shape", [(16, 16), (16,)])
def test_two_dimensional_image_is_refused(tmp_path, shape):
    path = _write(tmp_path / "slice.nii", np.zeros(shape, np.float32), np.eye(4))
    with pytest.raises(InvalidVolumeError, match=r"slice\.nii: image is \d-D .*expected a 3-D"):
        load_nifti(path)


def test_broken_sidecar_is_refused(tmp_path):
    path = _write(tmp_path / "sub-1_T2w.nii.gz", np.zeros((2, 2, 2), np.int16), np.eye(4))
    (tmp_path / "sub-1_T2w.json").write_text("{not json")
    with pytest.raises(ImageReadError, match=r"sub-1_T2w\.json: JSON sidecar cannot be read"):
        load_nifti(path)


def test_empty_sidecar_is_ignored(tmp_path):
    """gm-challenge-data ships empty .json files beside its masks."""
    path = _write(tmp_path / "sub-1_T2w.nii.gz", np.zeros((2, 2, 2), np.int16), np.eye(4))
    (tmp_path / "sub-1_T2w.json").write_text("")
    assert dict(load_nifti(path).meta["sidecar"]) == {}


def test_non_numeric_echo_time_is_refused(tmp_path):
    path = _write(tmp_path / "sub-1_T2w.nii.gz", np.zeros((2, 2, 2), np.int16), np.eye(4),
                  {"EchoTime": "short"})
    with pytest.raises(ImageReadError, match="EchoTime is 'short'; expected seconds"):
        load_nifti(path)


# --- writing ---------------------------------------------------------------------------------------
def test_round_trip_restores_the_on_disk_orientation(tmp_path, rng):
    array = rng.integers(0, 1000, (6, 5, 4)).astype(np.int16)
    source = _write(tmp_path / "psr.nii.gz", array, _psr_affine())
    ras = load_nifti(source).reorient("RAS")
    assert ras.orientation == "RAS"
    out = save_nifti(ras, tmp_path / "back.nii.gz", original_orientation=True)
    back, orig = nib.load(str(out)), nib.load(str(source))
    assert back.get_data_dtype() == orig.get_data_dtype()
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), np.asanyarray(orig.dataobj))
    np.testing.assert_array_equal(back.affine, orig.affine)


def test_round_trip_of_the_real_psr_t2(tmp_path):
    source = shared_path("sct_testing_data", "t2", "t2.nii.gz")
    vol = load_nifti(source)
    assert vol.orientation == "PSR"
    out = save_nifti(vol.reorient("RAS"), tmp_path / "t2.nii.gz", original_orientation=True)
    back, orig = nib.load(str(out)), nib.load(str(source))
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), np.asanyarray(orig.dataobj))
    np.testing.assert_allclose(back.affine, orig.affine, rtol=0, atol=1e-5)


def test_save_without_original_orientation_keeps_the_current_one(tmp_path, rng):
    vol = Volume(rng.random((3, 4, 5)), _psr_affine()).reorient("LPI")
    back = nib.load(str(save_nifti(vol, tmp_path / "x.nii.gz")))
    assert "".join(nib.aff2axcodes(back.affine)) == "LPI"
    assert back.get_data_dtype() == np.float32
    np.testing.assert_allclose(np.asanyarray(back.dataobj), vol.array, rtol=1e-6)


def test_labels_are_saved_as_int16_and_nothing_else_is_left(tmp_path):
    labels = LabelVolume(np.array([[[0, 1], [2, 3]]] * 2, dtype=np.uint8), np.eye(4))
    path = save_nifti(labels, tmp_path / "sub" / "mask.nii.gz")
    assert nib.load(str(path)).get_data_dtype() == np.int16
    assert [p.name for p in path.parent.iterdir()] == ["mask.nii.gz"]
