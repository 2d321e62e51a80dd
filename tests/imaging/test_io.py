"""imaging.load: dispatch by what it is given, real NIfTI files, masks on images, bad input."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import imaging.io as io_module
from imaging import load, load_labels, require_same_space
from imaging.errors import ImageReadError, NonFiniteVoxelError
from tests.conftest import SHARED_DATA, shared_path

REAL_NIFTI = sorted(str(p.relative_to(SHARED_DATA)) for p in SHARED_DATA.glob("**/*.nii*"))
HAS_DICOM = importlib.util.find_spec("imaging.dicom") is not None
needs_dicom = pytest.mark.skipif(not HAS_DICOM, reason="imaging.dicom (DICOM loader) is not "
                                 "merged into this branch yet")


def _squeezed_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


@pytest.mark.skipif(not REAL_NIFTI, reason=f"no NIfTI files under {SHARED_DATA}")
@pytest.mark.parametrize("relative", REAL_NIFTI or ["none"])
def test_every_real_nifti_loads_as_nibabel_reports(relative):
    path = shared_path(relative)
    vol = load(path, nonfinite="keep")
    ref = nib.load(str(path))
    assert vol.orientation == "".join(nib.aff2axcodes(ref.affine))
    assert vol.shape == _squeezed_shape(ref.shape)
    np.testing.assert_allclose(vol.affine, ref.affine, rtol=0, atol=1e-6)
    assert vol.meta["format"] == "nifti" and vol.meta["source"] == str(path)


MASK_PAIRS = [
    ("sct_testing_data/t2/t2.nii.gz", "sct_testing_data/t2/t2_seg-manual.nii.gz"),
    ("sct_testing_data/t1/t1w.nii.gz", "sct_testing_data/t1/t1w_seg-manual.nii.gz"),
    ("sct_testing_data/t2s/t2s.nii.gz", "sct_testing_data/t2s/t2s_seg.nii.gz"),
    ("sct_testing_data/t2s/t2s.nii.gz", "sct_testing_data/t2s/t2s_gmseg_manual.nii.gz"),
    ("sct_testing_data/t2s/t2s_uncropped.nii.gz",
     "sct_testing_data/t2s/t2s_uncropped_gmseg_manual.nii.gz"),
    ("sct_testing_data/t2/t2_fake_lesion.nii.gz",
     "sct_testing_data/t2/t2_fake_lesion_lesion_seg.nii.gz"),
    ("sct_testing_data/mt/mt1.nii.gz", "sct_testing_data/mt/mt1_seg.nii.gz"),
    *[(f"gm-challenge-data/{s}/anat/{s}_run-1_T2starw.nii.gz",
       f"gm-challenge-data/derivatives/labels/{s}/anat/{s}_run-1_T2starw_{kind}-manual.nii.gz")
      for s in ("sub-9418", "sub-9584", "sub-9709Ses1", "sub-9709Ses2")
      for kind in ("seg", "gmseg")],
    *[(f"data-testing/sub-unf01/anat/sub-unf01_{c}.nii.gz",
       f"data-testing/derivatives/labels/sub-unf01/anat/sub-unf01_{c}_seg-manual.nii.gz")
      for c in ("T1w", "T2w", "T2star")],
]


@pytest.mark.parametrize("image, mask", MASK_PAIRS, ids=[Path(m).name for _, m in MASK_PAIRS])
def test_masks_land_on_their_images(image, mask):
    vol = load(shared_path(image))
    labels = load_labels(shared_path(mask))
    require_same_space(vol, labels)
    require_same_space(vol.reorient("RAS"), labels.reorient("RAS"))
    assert labels.array.max() >= 1  # a real mask, not an empty file


# --- dispatch ----------------------------------------------------------------------------------
def test_nifti_and_itk_go_to_their_readers(tmp_path):
    import SimpleITK as sitk
    nifti = tmp_path / "a.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3), np.float32), np.eye(4)), str(nifti))
    mha = tmp_path / "a.mha"
    sitk.WriteImage(sitk.ReadImage(str(nifti)), str(mha))
    assert load(nifti).meta["format"] == "nifti"
    assert load(mha).meta["format"] == "metaimage"


def test_missing_path_is_named(tmp_path):
    with pytest.raises(ImageReadError, match=r"nowhere\.nii\.gz: no such file or folder"):
        load(tmp_path / "nowhere.nii.gz")


def test_unreadable_path_is_named(tmp_path, monkeypatch):
    path = tmp_path / "locked.nii.gz"
    path.write_bytes(b"")
    monkeypatch.setattr(io_module.os, "access", lambda p, mode: False)
    with pytest.raises(ImageReadError, match=r"locked\.nii\.gz: permission denied; make it "
                                             "readable"):
        load(path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="file permissions do not stop root (or are not POSIX here)")
def test_permission_denied_on_disk(tmp_path):
    path = tmp_path / "locked.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((2, 2, 2), np.float32), np.eye(4)), str(path))
    path.chmod(0)
    with pytest.raises(ImageReadError, match="permission denied"):
        load(path)


def test_unknown_nonfinite_policy_is_refused(tmp_path):
    with pytest.raises(ValueError, match="nonfinite='drop'"):
        load(tmp_path / "x.nii", nonfinite="drop")


@needs_dicom
def test_empty_folder_is_refused(tmp_path):
    with pytest.raises(ImageReadError, match=str(tmp_path.name)):
        load(tmp_path)


@needs_dicom
def test_non_image_file_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a scan")
    with pytest.raises(ImageReadError, match=r"notes\.txt"):
        load(path)


# --- non-finite voxels (built from the real t2) ----------------------------------------------------
@pytest.fixture
def t2_with_bad_voxels(tmp_path) -> Path:
    ref = nib.load(str(shared_path("sct_testing_data", "t2", "t2.nii.gz")))
    data = np.asanyarray(ref.dataobj).astype(np.float32)
    data[10, 10, 10] = np.nan
    data[11, 10, 10] = np.nan
    data[12, 10, 10] = -np.inf
    data[13, 10, 10] = np.finfo(np.float32).max
    path = tmp_path / "t2_bad.nii.gz"
    nib.save(nib.Nifti1Image(data, ref.affine), str(path))
    return path


def test_nonfinite_raise_counts_them(t2_with_bad_voxels):
    with pytest.raises(NonFiniteVoxelError, match=r"t2_bad\.nii\.gz: 3 voxels are not finite "
                                                  r"\(2 NaN, 1 infinite\).*nonfinite='zero'"):
        load(t2_with_bad_voxels)


def test_nonfinite_zero_replaces_only_them(t2_with_bad_voxels):
    vol = load(t2_with_bad_voxels, nonfinite="zero")
    assert np.all(np.isfinite(vol.array))
    assert vol.meta["nonfinite_voxels"] == 3 and vol.meta["nonfinite_policy"] == "zero"
    assert vol.array[10, 10, 10] == 0 and vol.array[12, 10, 10] == 0
    assert vol.array[20, 20, 20] == np.asanyarray(nib.load(str(t2_with_bad_voxels))
                                                  .dataobj)[20, 20, 20]


def test_nonfinite_keep_keeps_and_counts(t2_with_bad_voxels):
    vol = load(t2_with_bad_voxels, nonfinite="keep")
    assert np.isnan(vol.array[10, 10, 10]) and np.isneginf(vol.array[12, 10, 10])
    assert vol.meta["nonfinite_voxels"] == 3


def test_float32_max_is_finite_and_kept_as_is(tmp_path):
    """Decision: float32 max is a finite number, so every policy keeps it unchanged (no
    sentinel guessing); it is not counted as non-finite and nothing crashes on it."""
    ref = nib.load(str(shared_path("sct_testing_data", "t2", "t2.nii.gz")))
    data = np.asanyarray(ref.dataobj).astype(np.float32)
    data[5, 5, 5] = np.finfo(np.float32).max
    path = tmp_path / "t2_max.nii.gz"
    nib.save(nib.Nifti1Image(data, ref.affine), str(path))
    for policy in ("raise", "zero", "keep"):
        vol = load(path, nonfinite=policy)
        assert vol.array[5, 5, 5] == np.finfo(np.float32).max
        assert "nonfinite_voxels" not in vol.meta
    assert np.isfinite(load(path).reorient("RAS").crop((0, 0, 0), (8, 8, 8)).array).all()
