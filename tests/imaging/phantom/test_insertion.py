"""Grafts inserted into real scans stay inside the real cord mask, with exact truth."""

from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest

from imaging.errors import PhantomError
from imaging.io import load, load_labels
from imaging.phantom import insert_graft
from imaging.phantom.bids_writer import write_inserted
from imaging.volume import LabelVolume
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def sct_t2():
    image = load(shared_path("sct_testing_data", "t2", "t2.nii.gz"))
    mask = load_labels(shared_path("sct_testing_data", "t2", "t2_seg-manual.nii.gz"))
    return image, mask


@pytest.fixture(scope="module")
def gm_t2star():
    image = load(shared_path("gm-challenge-data", "sub-9584", "anat",
                             "sub-9584_run-1_T2starw.nii.gz"))
    # read with nibabel: the mask's JSON sidecar in the public data is an empty file
    mask_img = nib.load(shared_path("gm-challenge-data", "derivatives", "labels", "sub-9584",
                                    "anat", "sub-9584_run-1_T2starw_seg-manual.nii.gz"))
    mask = LabelVolume(np.rint(np.asarray(mask_img.dataobj)).astype(np.int16), mask_img.affine)
    return image, mask


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_graft_stays_inside_the_real_cord_mask_with_exact_volume(sct_t2, seed):
    image, mask = sct_t2
    result = insert_graft(image, mask, np.random.default_rng(seed), cells=2.0e6,
                          packing_density_cells_per_mm3=2.0e5)
    graft = result.graft_probseg.array
    outside = mask.array == 0
    assert graft[outside].sum() == 0
    assert np.array_equal(result.image.array[outside], image.array[outside])
    assert float(graft.sum()) * image.voxel_volume_mm3 == pytest.approx(10.0, rel=0.01)
    assert result.truth.graft_volume_mm3 == pytest.approx(10.0)
    assert set(np.unique(result.dseg.array[outside])) == {0}
    inside = graft >= 0.7 * graft.max()
    cord = np.median(image.array[mask.array > 0])
    assert 1.1 * cord < np.median(result.image.array[inside]) < 1.6 * cord   # graft is brighter


def test_spio_graft_in_a_real_t2star_scan_darkens_and_blooms(gm_t2star):
    image, mask = gm_t2star
    result = insert_graft(image, mask, np.random.default_rng(4), label="spio", cells=3.0e6)
    graft = result.graft_probseg.array
    assert graft[mask.array == 0].sum() == 0
    assert result.truth.iron_ug > 0
    darker = image.array.astype(np.float64) - result.image.array
    assert darker[graft > 0].mean() > 0                    # the void
    assert np.count_nonzero(np.abs(darker) > 1e-3) > np.count_nonzero(graft)  # blooming


def test_insertion_refuses_19f_and_an_empty_mask(sct_t2):
    image, mask = sct_t2
    with pytest.raises(PhantomError, match="no 19F image"):
        insert_graft(image, mask, np.random.default_rng(0), label="19f")
    empty = mask.with_array(np.zeros(mask.shape, dtype=np.int16))
    with pytest.raises(PhantomError, match="cord mask has 0 voxels"):
        insert_graft(image, empty, np.random.default_rng(0))


def test_inserted_truth_is_written_in_the_phantom_layout(sct_t2, tmp_path):
    image, mask = sct_t2
    result = insert_graft(image, mask, np.random.default_rng(5))
    write_inserted(tmp_path, "sub-t2", "ses-01", result)
    truth_dir = tmp_path / "derivatives" / "phantom-truth" / "sub-t2"
    with (truth_dir / "sub-t2_truth.tsv").open() as handle:
        row = next(csv.DictReader(handle, delimiter="\t"))
    probseg = load(truth_dir / "ses-01" / "anat" / "sub-t2_ses-01_label-graft_probseg.nii.gz")
    assert float(probseg.array.sum()) * probseg.voxel_volume_mm3 == pytest.approx(
        float(row["graft_volume_mm3"]), rel=0.01)
    assert load(tmp_path / "sub-t2" / "ses-01" / "anat" / "sub-t2_ses-01_T2w.nii.gz").same_space(
        probseg)
