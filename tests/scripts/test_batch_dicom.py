"""The batch command on a DICOM subject tree: a SEG per timepoint and an SR, read back."""

from __future__ import annotations

import csv
import datetime as dt
import json

import numpy as np
import pydicom
import pytest

from imaging.io import load
from imaging.study import discover_subject
from scripts.batch import main
from segmentation import dicom_codes
from segmentation.dicom_seg import read_dicom_seg
from segmentation.dicom_sr import read_dicom_sr
from segmentation.outputs import dicom_seg_path, dicom_sr_path, dseg_path, outputs_complete
from tests.scripts.dicom_cohort import write_dicom_subject

TRANSPLANT = dt.date(2025, 3, 1)


@pytest.fixture(scope="module")
def dicom_run(tmp_path_factory):
    from imaging.phantom import write_dataset
    base = tmp_path_factory.mktemp("dicom_cohort")
    bids = write_dataset(base / "bids", n_subjects=1, seed=3, labels=("none",), n_sessions=3)
    root = base / "dicom"
    write_dicom_subject(bids / "sub-001", root / "PHANTOM1", TRANSPLANT, "PHANTOM1")
    out = base / "out"
    code = main([str(root), "--out", str(out), "--device", "cpu",
                 "--transplant-date", TRANSPLANT.isoformat()])
    return root / "PHANTOM1", out, code


def _rows(path):
    with path.open() as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_seg_per_timepoint_reads_back_to_the_dseg_labels(dicom_run):
    tree, out, code = dicom_run
    assert code == 0
    subject = discover_subject(tree, transplant_date=TRANSPLANT)
    assert len(subject.timepoints) == 3
    uids, cord_voxels = set(), []
    for tp in subject.timepoints:
        files = list(tp.scans["T2w"].path)
        seg = read_dicom_seg(dicom_seg_path(out, "PHANTOM1", tp.label), files)
        dseg = load(dseg_path(out, "PHANTOM1", tp.label))
        np.testing.assert_allclose(seg.labels.affine, dseg.affine, atol=1e-4)
        np.testing.assert_array_equal(seg.labels.array, dseg.array)
        cord_voxels.append(np.count_nonzero(dseg.array == 1))
        assert seg.referenced_series_uid == tp.scans["T2w"].series_uid
        assert set(seg.tracking) == {1, 2, 3}
        assert seg.tracking[dicom_codes.GRAFT_LABEL][0] == "PHANTOM1 graft"
        uids.add(seg.tracking[dicom_codes.GRAFT_LABEL][1])
    assert len(uids) == 1  # the graft keeps one tracking UID across timepoints
    assert max(cord_voxels) > 0  # a cord was found somewhere: not an empty comparison


def test_sr_numbers_equal_the_timepoints_table(dicom_run):
    _, out, _ = dicom_run
    table = _rows(out / "PHANTOM1" / "PHANTOM1_timepoints.tsv")
    reported = read_dicom_sr(dicom_sr_path(out, "PHANTOM1"))
    assert [r.measurement.session for r in reported] == [row["session_id"] for row in table]
    for row, r in zip(table, reported):
        m = r.measurement
        assert m.days == float(row["days_post_transplant"])
        assert m.graft_volume_mm3 == pytest.approx(float(row["graft_volume_mm3"]), rel=1e-9)
        if row["surviving_fraction"] == "n/a":
            assert m.surviving_fraction is None
        else:
            assert m.surviving_fraction == pytest.approx(float(row["surviving_fraction"]),
                                                         rel=1e-9, abs=1e-12)
        assert r.tracking_id == "PHANTOM1 graft"
        seg = pydicom.dcmread(dicom_seg_path(out, "PHANTOM1", m.session), stop_before_pixels=True)
        assert r.seg_sop_instance_uid == seg.SOPInstanceUID
        graft = [d for d in seg.SegmentSequence if d.SegmentLabel == "graft"]
        assert r.segment_number == graft[0].SegmentNumber
        assert r.tracking_uid == graft[0].TrackingUID


def test_dicom_outputs_are_in_the_manifest_and_checked(dicom_run):
    _, out, _ = dicom_run
    manifest = json.loads((out / "PHANTOM1" / "PHANTOM1_outputs.json").read_text())["files"]
    dicom_files = sorted(name for name in manifest if name.endswith(".dcm"))
    assert len(dicom_files) == 4 and "PHANTOM1_sr.dcm" in dicom_files
    assert outputs_complete(out, "PHANTOM1")
    sr = dicom_sr_path(out, "PHANTOM1")
    original = sr.read_bytes()
    try:
        sr.write_bytes(original[:-10])  # a damaged SR: the subject is no longer complete
        assert not outputs_complete(out, "PHANTOM1")
    finally:
        sr.write_bytes(original)
    assert outputs_complete(out, "PHANTOM1")
